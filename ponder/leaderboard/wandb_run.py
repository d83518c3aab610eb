"""Logging results to Weights & Biases (`logger=wandb`; `logger=none`, the default, logs nothing):
a run per leaderboard cell (or per `ponder bench`) with its config, the per-problem table, the
summary metrics and the plot. `WANDB_MODE=offline` (or `logger.mode=offline`) writes the run
under `logger.dir` without a network; `wandb sync` uploads it later."""

from __future__ import annotations

import json
from pathlib import Path

from ponder.errors import ConfigError

INSTALL = "pip install 'ponder[wandb]' (or: pip install wandb)"
PROBLEM_COLUMNS = ("id", "correct", "pass_at_k", "answer", "reference", "n_candidates", "budget_exhausted", "error")
USAGE_COLUMNS = ("generated_tokens", "prompt_tokens", "flops", "verifier_calls", "seconds")


class NoLogger:
    """Logs nothing (`logger=none`)."""

    def log_run(self, name: str, config: dict, rows: list[dict], summary: dict, images=()) -> None:
        """Nothing to do."""


def problem_table(rows: list[dict]) -> tuple[list[str], list[list]]:
    """Columns and data of the per-problem table: the grade, the answer and the usage of each."""
    columns = list(PROBLEM_COLUMNS + USAGE_COLUMNS)
    data = []
    for r in rows:
        usage = r.get("usage", {})
        row = [
            r.get(k) if k not in ("answer", "reference") else (None if r.get(k) is None else str(r[k]))
            for k in PROBLEM_COLUMNS
        ]
        data.append(row + [usage.get(k) for k in USAGE_COLUMNS])
    return columns, data


def flat_metrics(summary: dict) -> dict:
    """Summary metrics as wandb wants them: numbers only, intervals split into low and high."""
    out = {}
    for k, v in summary.items():
        if isinstance(v, (list, tuple)) and len(v) == 2:
            out[f"{k}_low"], out[f"{k}_high"] = v
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = v
    return out


class WandbLogger:
    """One wandb run per call of `log_run`. `mode` None lets WANDB_MODE decide (online by default)."""

    def __init__(
        self,
        project: str = "ponder",
        entity: str | None = None,
        group: str | None = None,
        mode: str | None = None,
        dir: str = "runs/wandb",
    ):
        if mode not in (None, "online", "offline", "disabled"):
            raise ConfigError(f"logger.mode must be online, offline, disabled or null; got {mode!r}")
        self.project, self.entity, self.group, self.mode, self.dir = project, entity, group, mode, dir

    def log_run(self, name: str, config: dict, rows: list[dict], summary: dict, images=()) -> None:
        """A finished run: `config` as the run's config, `rows` as the table `problems`, the
        numbers of `summary` as summary metrics, each of `images` (paths) logged by its stem."""
        try:
            import wandb
        except ImportError:
            raise ConfigError(f"logger=wandb needs the wandb package, which is not installed; {INSTALL}") from None
        Path(self.dir).mkdir(parents=True, exist_ok=True)
        run = wandb.init(
            project=self.project,
            entity=self.entity,
            group=self.group,
            name=name,
            config=config,
            dir=self.dir,
            mode=self.mode,
            reinit="create_new",
        )
        try:
            columns, data = problem_table(rows)
            run.log({"problems": wandb.Table(columns=columns, data=data)})
            for path in images:
                run.log({Path(path).stem: wandb.Image(str(path))})
            run.summary.update(flat_metrics(summary))
            # also as plain files in the run's folder (synced with it): offline runs keep config and
            # summary only inside the binary .wandb log
            files = Path(run.dir)
            (files / "ponder_config.json").write_text(json.dumps(config, indent=1, default=str) + "\n")
            (files / "ponder_summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
        finally:
            run.finish()
