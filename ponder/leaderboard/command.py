"""The `ponder leaderboard` commands: run the grid (then report), or only report."""

from __future__ import annotations

import sys
from pathlib import Path


def report_task(cfg):
    """The task, for questions a folder did not keep (recorded results); None if it cannot load."""
    from ponder.config import instantiate
    from ponder.errors import PonderError

    try:
        task = instantiate(cfg.task, "task")
        task.problems()
        return task
    except PonderError as e:
        print(f"ponder: questions not shown ({e})", file=sys.stderr)
        return None


def report(cfg) -> dict:
    """`ponder leaderboard report out=... [sources=[...]]`: the table, plot and page from what is there."""
    from ponder.errors import ConfigError
    from ponder.leaderboard.report import make_report
    from ponder.leaderboard.table import markdown

    if not cfg.out:
        raise ConfigError("ponder leaderboard report needs out=<folder> (where the grid wrote, or where to write)")
    made = make_report(cfg.out, list(cfg.sources or []), cfg.baseline, cfg.title, report_task(cfg))
    print(markdown(made["rows"], made["warnings"]))
    print(f"page: {Path(str(cfg.out)) / 'index.html'}", file=sys.stderr)
    return made


def grid(cfg) -> None:
    """`ponder leaderboard ...`: run every cell not yet done, then the report; with logger=wandb
    a run per cell."""
    from ponder.bench import read_results
    from ponder.config import instantiate
    from ponder.leaderboard.grid import run_grid

    logger = instantiate(cfg.logger, "logger")  # a bad logger fails before the model loads
    done = run_grid(cfg)
    made = report(cfg)
    for cell, settings, summary in done:
        images = [p for p in made["paths"] if p.suffix == ".png"]
        logger.log_run(cell.name, settings, read_results(cell.path), summary, images)
