"""Reading cells from a folder: a leaderboard's (`<out>/cells/`), or results the older benchmark
scripts recorded (`benchmarks/search_gsm8k.py`'s `<model>-<tag>-<strategy>-b<budget>.jsonl` with
their settings beside them, `benchmarks/quality_gsm8k.py`'s `<model>-<strategy>-t<tokens>.jsonl`),
read as they are, so a report can be made from them without converting anything."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ponder.bench import read_results
from ponder.errors import ConfigError
from ponder.leaderboard.identity import config_hash


@dataclass
class ReadCell:
    """One cell's rows as the report sees them."""

    strategy: str
    budget: float | None  # None: run without a budget
    seed: int
    rows: list[dict]
    settings: dict
    identity: dict
    path: Path
    problems: dict = field(default_factory=dict)  # id -> {"question", "reference"} where known


def read_folder(folder: Path) -> list[ReadCell]:
    """Every cell a folder holds, in whichever of the three layouts it is."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"no results folder at {folder}; give out= (or sources=) a folder a leaderboard wrote")
    if (folder / "cells").is_dir():
        cells = leaderboard_cells(folder)
    elif any(folder.glob("*.settings.json")):
        cells = search_cells(folder)
    else:
        cells = quality_cells(folder)
    problems = read_problems(folder / "problems.jsonl")
    for cell in cells:
        cell.problems = problems
    return cells


def read_problems(path: Path) -> dict:
    return {r["id"]: r for r in read_results(path)}


def results_of(meta: Path) -> Path:
    """The results file a settings file belongs to: `x.jsonl.settings.json` (each file its own, as
    `ponder.results` writes them) or `x.settings.json` (as runs before it did)."""
    stem = meta.name.removesuffix(".settings.json")
    return meta.with_name(stem if stem.endswith(".jsonl") else stem + ".jsonl")


def leaderboard_cells(folder: Path) -> list[ReadCell]:
    cells = []
    for meta in sorted((folder / "cells").glob("*.settings.json")):
        settings = json.loads(meta.read_text())
        board, ident = settings["leaderboard"], settings["identity"]
        rows = read_results(results_of(meta))
        if rows:
            cells.append(ReadCell(board["strategy"], board["budget"], ident["seed"], rows, settings, ident, meta))
    return cells


def machine_torch(folder: Path) -> str | None:
    """The torch version a search_gsm8k summary's `machine` line names ('..., torch 2.13.0+cpu, ...')."""
    summary = folder.with_suffix(".json")
    if not summary.is_file():
        return None
    found = re.search(r"torch (\S+?),", json.loads(summary.read_text()).get("machine", ""))
    return found.group(1) if found else None


def search_cells(folder: Path) -> list[ReadCell]:
    """search_gsm8k's files: settings {model, prm, budget, strategy}; HF backend, CPU, fp32 (the
    script's only set-up); versions other than torch's were not recorded."""
    from ponder.leaderboard.grid import strategy_names

    names = sorted(strategy_names(), key=len, reverse=True)  # weighted_best_of_n before best_of_n
    torch = machine_torch(folder)
    cells = []
    for meta in sorted(folder.glob("*.settings.json")):
        stem = results_of(meta).name.removesuffix(".jsonl")
        found = re.fullmatch(r".*?-(" + "|".join(names) + r")-b(\d+)", stem)
        rows = read_results(results_of(meta))
        if not found or not rows:
            continue
        settings = json.loads(meta.read_text())
        prm = settings.get("prm")
        ident = {
            "config_hash": config_hash(settings),
            "seed": 0,
            "torch": torch,
            "backend": "hf",
            "device": "cpu",
            "dtype": "fp32",
            "prm_digest": prm.get("metrics_sha1") if isinstance(prm, dict) else prm,
        }
        cells.append(ReadCell(found.group(1), float(found.group(2)), 0, rows, settings, ident, meta))
    return cells


def quality_cells(folder: Path) -> list[ReadCell]:
    """quality_gsm8k's files (`<folder>/quality/` or the folder itself): no budget, no settings
    file; the name says the strategy and the token limit."""
    inner = folder / "quality" if (folder / "quality").is_dir() else folder
    cells = []
    for path in sorted(inner.glob("*.jsonl")):
        found = re.fullmatch(r"(.+?)-([a-z_]+(?:_n\d+)?)-t(\d+)", path.stem)
        rows = read_results(path)
        if not found or not rows:
            continue
        settings = {"model": found.group(1), "strategy": found.group(2), "max_new_tokens": int(found.group(3))}
        ident = {"config_hash": config_hash(settings), "seed": 0, "backend": "hf", "device": "cpu", "dtype": "fp32"}
        cells.append(ReadCell(found.group(2), None, 0, rows, settings, ident, path))
    if not cells:
        raise ConfigError(f"{folder} holds no cells: neither a leaderboard's cells/ nor recorded benchmark results")
    return cells


def read_sources(folders: list) -> tuple[list[ReadCell], list[str]]:
    """Cells of every folder; where two hold the same (strategy, budget, seed), the later folder's
    replaces the earlier's (a rerun kept apart), and a note says so."""
    by_key: dict = {}
    notes = []
    for folder in folders:
        for cell in read_folder(Path(folder)):
            key = (cell.strategy, cell.budget, cell.seed)
            if key in by_key:
                notes.append(
                    f"{cell.strategy} at {cell.budget:g}, seed {cell.seed}: {cell.path} replaces {by_key[key].path}"
                )
            by_key[key] = cell
    return list(by_key.values()), notes
