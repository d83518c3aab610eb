"""`ponder leaderboard report`: the table (Markdown, CSV, JSON), the plot (PNG, SVG) and the web
page, made from whatever cells the folders hold (a grid still running reports what is done)."""

from __future__ import annotations

from pathlib import Path

from ponder.errors import ConfigError
from ponder.leaderboard.identity import mismatches
from ponder.leaderboard.page import write_page
from ponder.leaderboard.plot import plot
from ponder.leaderboard.recorded import read_sources
from ponder.leaderboard.table import build_table, write_tables


def fill_problems(cells, task) -> None:
    """Questions and references from `task` for cells whose folder did not keep them."""
    if task is None or all(c.problems for c in cells):
        return
    known = {p.id: {"id": p.id, "question": p.question, "reference": str(p.reference)[:2000]} for p in task}
    for c in cells:
        c.problems = c.problems or known


def warnings_for(cells, notes: list[str]) -> list[str]:
    """What a reader of the table must know: rows made on different set-ups, rows over different
    problems, cells one folder's replaced in another's."""
    warnings = mismatches([c.identity for c in cells])
    sizes = {}
    for c in cells:
        sizes.setdefault(len(c.rows), []).append(f"{c.strategy}@{c.budget or '-'}")
    if len(sizes) > 1:
        counts = "; ".join(
            f"{n} problems: {', '.join(names[:4])}{'...' if len(names) > 4 else ''}"
            for n, names in sorted(sizes.items())
        )
        warnings.append(f"cells cover different numbers of problems (still running?): {counts}")
    return warnings + notes


def make_report(out, sources=(), baseline: str | None = "greedy", title: str | None = None, task=None) -> dict:
    """Read the cells of `out` (when it holds any) and of every folder in `sources`, and write
    table.{md,csv,json}, plot.{png,svg} and index.html into `out`; return the rows, the warnings
    and the paths written."""
    out = Path(out)
    folders = ([out] if (out / "cells").is_dir() else []) + [Path(str(s)) for s in sources]
    if not folders:
        raise ConfigError(f"{out} holds no leaderboard cells (no {out / 'cells'}) and no sources= were given")
    cells, notes = read_sources(folders)
    if not cells:
        raise ConfigError(f"no finished problems in {', '.join(map(str, folders))}: nothing to report")
    fill_problems(cells, task)
    if baseline and baseline not in {c.strategy for c in cells}:
        notes = notes + [f"baseline {baseline!r} has no cells here: no paired comparisons"]
    rows = build_table(cells, baseline)
    warnings = warnings_for(cells, notes)
    out.mkdir(parents=True, exist_ok=True)
    title = title or f"leaderboard: {out.name}"
    meta = {"title": title, "baseline": baseline, "sources": [str(f) for f in folders]}
    write_tables(rows, warnings, meta, out)
    pictures = plot(rows, out, title)
    page = write_page(rows, cells, warnings, title, baseline, out)
    return {
        "rows": rows,
        "warnings": warnings,
        "paths": [out / "table.md", out / "table.csv", out / "table.json", *pictures, page],
    }
