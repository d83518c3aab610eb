"""`ponder leaderboard` as a user runs it, on tiny models: the grid's cells sized and seeded, a
killed cell resumed, the same rows on a second run (HF and vLLM), cells made otherwise refused,
and a wandb run per cell (offline)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ENV = dict(os.environ, HYDRA_FULL_ERROR="0", WANDB_MODE="offline", WANDB_SILENT="true")
ENGINE = ["model.backend=vllm", "model.vllm.dtype=fp32", "model.vllm.max_model_len=1024", "model.vllm.kv_cache_gb=0.25"]


def ponder(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "ponder.cli", *args], capture_output=True, text=True, env=env or ENV, timeout=600
    )


def grid_args(model: str, data: Path, out: Path, *extra) -> list[str]:
    return [
        "leaderboard",
        f"model.path={model}",
        "task=jsonl",
        f"task.path={data}",
        "task.question_field=q",
        "task.answer_field=a",
        "strategies=[greedy,self_consistency]",
        "budget_key=max_generated_tokens",
        "sizing.solution_tokens=15",
        f"out={out}",
        *extra,
    ]


def numbers(folder: Path) -> dict:
    """Every cell's rows without their wall seconds (the one thing a rerun may change)."""
    cells = {}
    for path in sorted((folder / "cells").glob("*.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        for r in rows:
            r["usage"].pop("seconds")
        cells[path.name] = sorted(rows, key=lambda r: r["id"])
    return cells


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps({"q": f"What is {i} + 1?", "a": i + 1}) + "\n" for i in range(4)))
    return path


def test_grid_sizes_resumes_repeats_and_refuses(tiny_folder, data, tmp_path):
    wandb_dir = tmp_path / "wandb"
    args = grid_args(tiny_folder, data, tmp_path / "a", "budgets=[30,60]", "seeds=[0,1]", "together=2")
    r = ponder(*args, "logger=wandb", f"logger.dir={wandb_dir}")
    assert r.returncode == 0, r.stderr
    assert "[cell 6/6]" in r.stderr  # progress names the cells
    cells = sorted(p.name for p in (tmp_path / "a" / "cells").glob("*.jsonl"))
    assert cells == [  # greedy has no seed: once per budget
        "greedy-b30-s0.jsonl",
        "greedy-b60-s0.jsonl",
        "self_consistency-b30-s0.jsonl",
        "self_consistency-b30-s1.jsonl",
        "self_consistency-b60-s0.jsonl",
        "self_consistency-b60-s1.jsonl",
    ]
    made = json.loads((tmp_path / "a" / "cells" / "self_consistency-b60-s1.jsonl.settings.json").read_text())
    assert made["config"]["strategy"]["n"] == 4 and made["config"]["strategy"]["seed"] == 1  # 60 // 15 samples
    assert made["config"]["budget"]["max_generated_tokens"] == 60
    assert made["identity"]["backend"] == "hf" and made["identity"]["torch"] and made["identity"]["dtype"] == "fp32"
    first = numbers(tmp_path / "a")
    assert all(len(rows) == 4 for rows in first.values())
    for rows in first.values():
        assert all(sum(r["usage"]["generated_tokens"] for r in [row]) <= 60 for row in rows)
    table = json.loads((tmp_path / "a" / "table.json").read_text())
    assert len(table["rows"]) == 4 and (tmp_path / "a" / "index.html").is_file()

    # wandb, offline: a run per cell with its config, the per-problem table and the metrics
    runs = sorted((wandb_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 6
    for run in runs:
        assert list(run.glob("run-*.wandb"))  # wandb's own log, for `wandb sync`
        assert json.loads((run / "files" / "ponder_config.json").read_text())["leaderboard"]["budget"] in (30, 60)
        assert json.loads((run / "files" / "ponder_summary.json").read_text())["problems"] == 4
        assert list((run / "files" / "media" / "table").glob("problems_*.table.json"))
        assert list((run / "files" / "media" / "images").glob("plot_*.png"))

    # kill -9 in the middle of a cell: two lines kept and a third half-written; a rerun finishes it
    cut = tmp_path / "a" / "cells" / "self_consistency-b60-s0.jsonl"
    lines = cut.read_text().splitlines(keepends=True)
    cut.write_text("".join(lines[:2]) + lines[2][:20])
    r = ponder(*args)
    assert r.returncode == 0, r.stderr
    resumed = numbers(tmp_path / "a")
    assert resumed.keys() == first.keys() and len(resumed[cut.name]) == 4
    for got, was in zip(resumed[cut.name], first[cut.name]):  # the resumed problems give what they gave
        assert (got["id"], got["answer"], got["candidates"]) == (was["id"], was["answer"], was["candidates"])
        # (prompt tokens may differ: the chat template's prefix was cached from the cell's first problems)
        assert got["usage"]["generated_tokens"] == was["usage"]["generated_tokens"]

    # the same grid in another folder: the same numbers
    r = ponder(*grid_args(tiny_folder, data, tmp_path / "b", "budgets=[30,60]", "seeds=[0,1]", "together=2"))
    assert r.returncode == 0, r.stderr
    assert numbers(tmp_path / "b") == first

    # a cell made otherwise would mix two runs: refused before anything runs, nothing added
    r = ponder(*args, "+cells.self_consistency.temperature=0.9")
    assert r.returncode != 0 and "made with other settings" in r.stderr and "Traceback" not in r.stderr
    assert numbers(tmp_path / "a") == resumed


def test_a_missing_wandb_says_how_to_install_it(tiny_folder, data, tmp_path):
    hide = tmp_path / "no-wandb" / "wandb"
    hide.mkdir(parents=True)
    (hide / "__init__.py").write_text("raise ImportError('No module named wandb')\n")
    env = dict(ENV, PYTHONPATH=os.pathsep.join([str(hide.parent), os.environ.get("PYTHONPATH", "")]))
    r = ponder(
        "bench",
        f"model.path={tiny_folder}",
        "task=jsonl",
        f"task.path={data}",
        "task.question_field=q",
        "task.answer_field=a",
        "strategy=greedy",
        "strategy.max_new_tokens=4",
        f"out={tmp_path}/g.jsonl",
        "logger=wandb",
        env=env,
    )
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "pip install 'ponder[wandb]'" in r.stderr


def test_bench_logs_to_wandb_offline(tiny_folder, data, tmp_path):
    r = ponder(
        "bench",
        f"model.path={tiny_folder}",
        "task=jsonl",
        f"task.path={data}",
        "task.question_field=q",
        "task.answer_field=a",
        "strategy=greedy",
        "strategy.max_new_tokens=4",
        f"out={tmp_path}/g.jsonl",
        "logger=wandb",
        f"logger.dir={tmp_path}/wandb",
    )
    assert r.returncode == 0, r.stderr
    (run,) = (tmp_path / "wandb" / "wandb").glob("offline-run-*")
    assert json.loads((run / "files" / "ponder_config.json").read_text())["strategy"]["_target_"].endswith("Greedy")
    summary = json.loads((run / "files" / "ponder_summary.json").read_text())
    assert summary["problems"] == 4 and len(summary["accuracy_ci95"]) == 2
    (table,) = (run / "files" / "media" / "table").glob("problems_*.table.json")
    assert len(json.loads(table.read_text())["data"]) == 4


def test_the_same_grid_twice_on_vllm_gives_the_same_numbers(engine_folder, data, tmp_path):
    for name in ("a", "b"):
        r = ponder(*grid_args(engine_folder, data, tmp_path / name, "budgets=[40]", "seeds=[0]", *ENGINE))
        assert r.returncode == 0, r.stderr
    first = numbers(tmp_path / "a")
    assert len(first) == 2 and all(len(rows) == 4 for rows in first.values())
    assert first == numbers(tmp_path / "b")
    made = json.loads((tmp_path / "a" / "cells" / "self_consistency-b40-s0.jsonl.settings.json").read_text())
    assert made["identity"]["backend"] == "vllm" and made["identity"]["dtype"] == "fp32"
    assert made["identity"]["vllm"]


def test_user_mistakes_are_named(data, tmp_path):
    r = ponder(*grid_args("no-such-model", data, tmp_path / "x", "strategies=[greedy,nope]"))
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "'nope', which is not a strategy" in r.stderr and "self_consistency" in r.stderr
    r = ponder("leaderboard", "report", f"out={tmp_path}/empty")
    assert r.returncode != 0 and "Traceback" not in r.stderr and "no leaderboard cells" in r.stderr
    r = ponder(*grid_args("no-such-model", data, tmp_path / "y", "budget_key=max_tokens"))
    assert r.returncode != 0 and "budget_key must be a budget key" in r.stderr
