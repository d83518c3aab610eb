"""Benchmark runs: every problem of a task through a Generator, one JSON line per problem
written as it finishes (a killed run loses nothing; a rerun resumes), then a summary."""

from __future__ import annotations

import json
import math
import os
from contextlib import closing
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from ponder.errors import PonderError, PromptError
from ponder.results import read_results, resume_cache, results_lock, write_error
from ponder.samplers.self_consistency import repetitive

__all__ = ["read_results", "resume_cache", "run_benchmark", "summarize", "format_summary", "wilson"]


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion."""
    if n == 0:
        return (0.0, 0.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def grade(task, problem, result) -> dict:
    verdicts = {}  # grade each distinct text once (code runs in the sandbox)
    for cand in result.candidates:
        if cand.text not in verdicts:
            verdicts[cand.text] = task.check(cand.text, problem)
    correct = (
        verdicts.get(result.text)
        if result.text in verdicts
        else (task.check(result.text, problem) if result.text else False)
    )
    return {
        "correct": bool(correct),
        "pass_at_k": any(verdicts.values()) or bool(correct),
        "n_candidates": len(result.candidates),
        # each candidate without its text, with its verdict and whether the text repeats itself: other
        # choosers (of the answer, or of the text shown) can be compared on them later
        "candidates": [
            {
                **{k: v for k, v in c.to_dict().items() if k != "text"},
                "correct": bool(verdicts[c.text]),
                "repetitive": repetitive(c.text),
            }
            for c in result.candidates
        ],
    }


def run_benchmark(
    generator, task, out: str | os.PathLike, progress: bool = True, settings: dict | None = None, together: int = 1
) -> dict:
    """Run every problem not yet in `out`, `together` at a time (their model calls batched; a
    line is written as each finishes); return the summary of the task's problems in `out`. With `settings`
    (what made the results: model, strategy, verifier...), a rerun refuses to add to results
    made with other settings instead of mixing them."""
    out = Path(out)
    with results_lock(out):
        earlier = resume_cache(out, settings, "results")
        ids = [p.id for p in task]
        done = {r["id"] for r in earlier if "id" in r}
        todo = [p for p in task if p.id not in done]
        try:
            write_rows(generator, task, todo, out, together, progress, earlier)
            summary = summarize([r for r in read_results(out) if r.get("id") in set(ids)])
            Path(str(out) + ".summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        except OSError as e:
            kept = f" The {len(read_results(out))} finished rows in it are kept."
            raise write_error(out, e, kept) from None
    return summary


def write_rows(generator, task, todo: list, out: Path, together: int, progress: bool, earlier: list[dict]) -> None:
    """Run `todo` and append a graded row per problem to `out` as each finishes (fsynced)."""
    graded, correct = len(earlier), sum(r.get("correct", False) for r in earlier)
    with (
        open(out, "a") as f,
        tqdm(
            total=len(task),
            initial=len(task) - len(todo),
            disable=not progress,
            desc=f"{task.name}",
            unit="problem",
            dynamic_ncols=True,
        ) as bar,
        closing(generator.run_many([p.question for p in todo], together)) as runs,  # closed on any error
    ):
        for i, result in runs:
            row = result_row(task, todo[i], result)
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())
            graded, correct = graded + 1, correct + row.get("correct", False)
            bar.update(1)
            bar.set_postfix(acc=f"{correct / graded:.3f}")


def result_row(task, problem, result) -> dict:
    """The results line of one problem: graded, or the error it met (a user mistake that fails
    every problem alike, a PonderError other than a PromptError, stops the run instead)."""
    try:
        if isinstance(result, BaseException):
            raise result  # what the problem's strategy raised
        row = {
            "id": problem.id,
            "answer": result.answer,
            **grade(task, problem, result),
            "budget_exhausted": result.budget_exhausted,
            "usage": asdict(result.usage),
            "text": result.text,
        }
    except PromptError as e:  # this problem's prompt cannot run (too long): the others can
        row = {"id": problem.id, "error": str(e)}
    except PonderError:
        raise
    except Exception as e:  # one bad problem must not cost the run
        row = {"id": problem.id, "error": f"{type(e).__name__}: {e}"}
    if isinstance(problem.reference, str) and len(problem.reference) < 200:
        row["reference"] = problem.reference
    return row


def summarize(rows: list[dict]) -> dict:
    ok = [r for r in rows if "error" not in r]
    n = len(ok)
    correct, covered = sum(r["correct"] for r in ok), sum(r["pass_at_k"] for r in ok)
    mean = lambda key: sum(r["usage"][key] for r in ok) / n if n else 0.0
    return {
        "problems": len(rows),
        "errors": len(rows) - n,
        "accuracy": correct / n if n else 0.0,
        "accuracy_ci95": wilson(correct, n),
        "coverage": covered / n if n else 0.0,
        "coverage_ci95": wilson(covered, n),
        "mean_generated_tokens": mean("generated_tokens"),
        "mean_flops": mean("flops"),
        "mean_seconds": mean("seconds"),
        "budget_exhausted": sum(r["budget_exhausted"] for r in ok) / n if n else 0.0,
    }


def format_summary(s: dict) -> str:
    lo, hi = s["accuracy_ci95"]
    clo, chi = s["coverage_ci95"]
    return (
        f"problems {s['problems']} (errors {s['errors']})\n"
        f"accuracy {s['accuracy']:.3f}  95% CI [{lo:.3f}, {hi:.3f}]\n"
        f"coverage (pass@k) {s['coverage']:.3f}  95% CI [{clo:.3f}, {chi:.3f}]\n"
        f"per problem: {s['mean_generated_tokens']:.1f} generated tokens, {s['mean_flops']:.3g} FLOPs, "
        f"{s['mean_seconds']:.2f} s; budget ran out on {s['budget_exhausted']:.1%}"
    )
