"""What the leaderboard's bookkeeping costs: the same cells run as `ponder bench` runs them (a
Generator and `run_benchmark` per cell, with its settings guard) and as `ponder leaderboard`
runs them (`run_grid`: planning and sizing, the row identity, every cell's guard checked up
front, the problems file, fresh caches), one model loaded once for both, in one process. The
two are interleaved cell by cell, in alternating order, `--repeats` times, so the machine's
load falls on both alike; the report (table, plot, page) is timed apart, since `ponder bench`
has none.

    PONDER_DATA=../shared/data python benchmarks/leaderboard_overhead.py --model smollm2-135m
    PONDER_DATA=../shared/data python benchmarks/leaderboard_overhead.py --model <folder>   # a local model

The second form with the tests' tiny random Llama (`tests/fakes.py`, saved to a folder) makes the
model's own work as small as it gets, so the bookkeeping's share is at its largest.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import save
from search_gsm8k import compose_leaderboard


def bench_cell(model, cell, task, folder: Path) -> float:
    """One cell as `ponder bench` runs it; its wall seconds."""
    from ponder.bench import run_benchmark
    from ponder.config import instantiate
    from ponder.generator import Generator
    from ponder.leaderboard.grid import fresh_caches

    start = time.perf_counter()
    fresh_caches(model, None)  # as a separate `ponder bench` process starts: nothing cached
    strategy = instantiate(cell.strategy_config, "strategy")
    gen = Generator(model, strategy, budget=cell.limits)
    settings = {"strategy": cell.strategy_config, "budget": cell.limits}
    run_benchmark(gen, task, folder / f"{cell.name}.jsonl", progress=False, settings=settings)
    return time.perf_counter() - start


def main():
    from ponder.config import instantiate
    from ponder.leaderboard import make_report, plan_cells

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m", help="a model preset or a local model folder")
    ap.add_argument("--limit", type=int, default=4)
    ap.add_argument("--budgets", default="24,48", help="generated tokens per problem")
    ap.add_argument("--strategies", default="greedy,self_consistency")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    base = [
        f"model.path={args.model}" if Path(args.model).is_dir() else f"model={args.model}",
        f"task.limit={args.limit}",
        "budget_key=max_generated_tokens",
        "sizing.solution_tokens=12",
    ]
    cfg = compose_leaderboard(base + [f"budgets=[{args.budgets}]", f"strategies=[{args.strategies}]", "out=x"])
    model = instantiate(cfg.model, "model", decoder=instantiate(cfg.decoder, "decoder"))
    task = instantiate(cfg.task, "task")
    cells = plan_cells(cfg, model.shape.params, Path("x"))
    bench_s, grid_s, report_s = 0.0, 0.0, 0.0
    inside = []  # seconds of each grid cell spent running its problems (run_benchmark)
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            for i, cell in enumerate(cells):
                one = compose_leaderboard(
                    base + [f"budgets=[{cell.budget:g}]", f"strategies=[{cell.strategy}]", f"out={tmp}/grid-{rep}-{i}"]
                )
                runs = [
                    ("bench", lambda: bench_cell(model, cell, task, Path(tmp) / f"bench-{rep}")),
                    ("grid", lambda: grid_cell(one, model, inside)),
                ]
                for kind, run in runs if (rep + i) % 2 == 0 else runs[::-1]:
                    seconds = run()
                    bench_s, grid_s = (bench_s + seconds, grid_s) if kind == "bench" else (bench_s, grid_s + seconds)
                report_s += timed(lambda: make_report(Path(tmp) / f"grid-{rep}-{i}", baseline="greedy"))
        overhead = (grid_s - bench_s) / bench_s
        own = (grid_s - sum(inside)) / grid_s
        print(f"bench {bench_s:.1f} s, grid {grid_s:.1f} s: the grid {overhead:+.2%} against bench (paired, noisy)")
        print(f"the grid's own bookkeeping (outside its cells' run_benchmark): {own:.3%} of its wall time")
        print(f"report (table, plot, page) {report_s / args.repeats / len(cells):.2f} s a cell")
        save(
            __file__,
            f"overhead-{Path(args.model).name}",
            {
                "model": args.model,
                "problems": args.limit,
                "cells": [c.name for c in cells],
                "repeats": args.repeats,
                "bench_seconds": bench_s,
                "grid_seconds": grid_s,
                "overhead": overhead,
                "grid_seconds_in_cells": sum(inside),
                "bookkeeping_share": own,
                "report_seconds_per_cell": report_s / args.repeats / len(cells),
            },
        )


def grid_cell(cfg, model, inside: list) -> float:
    """One cell as `ponder leaderboard` runs it; its wall seconds (and, into `inside`, the part
    spent in run_benchmark, which the bench run does too)."""
    from ponder.leaderboard import run_grid

    start = time.perf_counter()
    done = run_grid(cfg, model=model, progress=False)
    seconds = time.perf_counter() - start
    inside.append(sum(summary["cell_wall_seconds"] for _, _, summary in done))
    return seconds


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
