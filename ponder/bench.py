"""Benchmark runs: every problem of a task through a Generator, one JSON line per problem
written as it finishes (a killed run loses nothing; a rerun resumes), then a summary."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from ponder.errors import ConfigError, PonderError


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion."""
    if n == 0:
        return (0.0, 0.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def read_results(path: Path) -> list[dict]:
    """Finished lines of a results file; a last line cut off by a kill is ignored."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


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
        # each candidate without its text, and its verdict: other choosers can be compared on them later
        "candidates": [
            {**{k: v for k, v in c.to_dict().items() if k != "text"}, "correct": bool(verdicts[c.text])}
            for c in result.candidates
        ],
    }


def drop_partial_line(path: Path) -> None:
    """A run killed mid-write leaves a last line without its newline: cut it off."""
    if path.is_file() and (data := path.read_bytes()) and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def resume_cache(path: Path, settings: dict | None, what: str) -> list[dict]:
    """The records a stopped run left in `path` (a JSONL file, a half-written last line dropped).
    With `settings` (kept beside it in <name>.settings.json), only when they are the ones that
    made them: a clear error when they differ and there are records (a run that stopped before
    its first record holds nothing to mix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    drop_partial_line(path)
    records = read_results(path)
    if settings is not None:
        meta = path.with_suffix(".settings.json")
        if records and meta.is_file() and json.loads(meta.read_text()) != settings:
            raise ConfigError(
                f"{path} holds {what} made with other settings ({meta.read_text().strip()}); "
                "write to another folder (out= or --out) or delete it"
            )
        meta.write_text(json.dumps(settings) + "\n")
    return records


def run_benchmark(
    generator, task, out: str | os.PathLike, progress: bool = True, settings: dict | None = None, together: int = 1
) -> dict:
    """Run every problem not yet in `out`, `together` at a time (their model calls batched; a
    line is written as each finishes); return the summary of all of `out`. With `settings`
    (what made the results: model, strategy, verifier...), a rerun refuses to add to results
    made with other settings instead of mixing them."""
    out = Path(out)
    earlier = resume_cache(out, settings, "results")
    done = {r["id"] for r in earlier}
    todo = [p for p in task if p.id not in done]
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
    ):
        for i, result in generator.run_many([p.question for p in todo], together):
            problem = todo[i]
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
            except PonderError:
                raise  # a user mistake (budget, config) fails every problem alike: stop and say so
            except Exception as e:  # one bad problem must not cost the run
                row = {"id": problem.id, "error": f"{type(e).__name__}: {e}"}
            if isinstance(problem.reference, str) and len(problem.reference) < 200:
                row["reference"] = problem.reference
            f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())
            graded, correct = graded + 1, correct + row.get("correct", False)
            bar.update(1)
            bar.set_postfix(acc=f"{correct / graded:.3f}")
    summary = summarize(read_results(out))
    Path(str(out) + ".summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


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
