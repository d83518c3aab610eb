"""Accuracy and compute of greedy, self-consistency (n=8) and adaptive consistency on the first
--limit GSM8K test problems (zero-shot, the `gsm8k` task's prompt), one model load for all.

On a 2-core CPU one problem at a time is too slow for 100 problems (self-consistency took about
two minutes a problem), so this script batches *across problems*: one backend call decodes
--greedy-batch problems greedily, or 8 samples each of --sample-batch problems. The answers are
then chosen by the strategies' own code: `vote_result` over `group_by_answer` for
self-consistency, and for adaptive consistency `AdaptiveConsistency.decided` replayed on the
same i.i.d. samples in rounds of 4 (it uses the first 4, or all 8 when 4 do not decide), so
the two are compared on identical samples. Generated tokens, prompt tokens and FLOPs per
problem are exact (the budget module's FLOP model); seconds are the batch's wall time shared
out by generated tokens.

Per-problem lines go to benchmarks/results/quality_gsm8k/quality/ (resumable: rerun to continue); the
summary to quality-<model>.json (strategies compared on the problems all of them have done, and
each on all it has done); the table, plot (accuracy against FLOPs) and page to
results/quality_gsm8k/leaderboard/, made by `ponder.leaderboard` from the per-problem files (as
`ponder leaderboard report out=... sources=[benchmarks/results/quality_gsm8k]` does).

    PONDER_DATA=../shared/data python benchmarks/quality_gsm8k.py --model qwen2.5-coder-0.5b
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from common import results_dir, save
from ponder.bench import drop_partial_line, format_summary, grade, read_results, summarize
from ponder.leaderboard import make_report
from ponder.budget import Budget
from ponder.models import load_model
from ponder.samplers import AdaptiveConsistency
from ponder.samplers.population import group_by_answer
from ponder.samplers.self_consistency import vote_result
from ponder.tasks import GSM8K
from ponder.types import Candidate, SamplingParams
from ponder.verifiers import MathVerifier

VERIFIER = MathVerifier()
ADAPTIVE = AdaptiveConsistency(n=8, batch=4, min_samples=4, threshold=0.75)


def sample_flops(shape, prompt_len: int, tokens: int) -> float:
    """Decode FLOPs of one sample: the first token comes from the prefill, each later one
    costs a forward pass at a context one longer."""
    return sum(shape.decode_flops([prompt_len + j]) for j in range(1, tokens))


def row(task, problem, res, cands, prompt_len, shape, seconds):
    tokens = sum(len(c.completion.token_ids) for c in cands)
    flops = shape.forward_flops(prompt_len, 0) + sum(
        sample_flops(shape, prompt_len, len(c.completion.token_ids)) for c in cands
    )
    usage = {
        "generated_tokens": tokens,
        "prompt_tokens": prompt_len,
        "cached_prompt_tokens": 0,
        "forward_passes": 1 + max(len(c.completion.token_ids) - 1 for c in cands),
        "flops": flops,
        "verifier_calls": 0,
        "seconds": seconds,
    }
    return {
        "id": problem.id,
        "answer": res.answer,
        **grade(task, problem, res),
        "budget_exhausted": False,
        "usage": usage,
        "text": res.text,
        "reference": problem.reference,
        "candidate_answers": [c.answer for c in cands],
    }


def candidates(completions):
    return [Candidate(c.text, VERIFIER.extract_answer(c.text), c) for c in completions if c.token_ids]


def decide(strategy: str, cands):
    """(result, candidates it used) by the strategy's own selection code."""
    if strategy == "adaptive_consistency_n8":
        first = cands[: ADAPTIVE.batch]
        if ADAPTIVE.decided(group_by_answer(first, VERIFIER), len(first)):
            cands = first
    groups = group_by_answer(cands, VERIFIER)
    return vote_result(cands, groups, VERIFIER, Budget(), []), cands


def append(path: Path, rows: list[dict]) -> None:
    with open(path, "a") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
        f.flush()
        os.fsync(f.fileno())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--max-new-tokens", type=int, default=512)
    ap.add_argument("--greedy-batch", type=int, default=32, help="problems per greedy backend call")
    ap.add_argument("--sample-batch", type=int, default=8, help="problems per sampling call (8 rows each)")
    ap.add_argument("--summary-only", action="store_true", help="summarise and plot what the files hold; no decoding")
    args = ap.parse_args()
    task = GSM8K(limit=args.limit)
    problems = list(task)
    files = {
        name: results_dir(__file__) / "quality" / f"{args.model}-{name}-t{args.max_new_tokens}.jsonl"
        for name in ("greedy", "self_consistency_n8", "adaptive_consistency_n8")
    }
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        drop_partial_line(path)
    done = {name: {r["id"] for r in read_results(p)} for name, p in files.items()}
    model = (
        None
        if args.summary_only
        else load_model(args.model, max_batch_rows=max(args.greedy_batch, 8 * args.sample_batch))
    )

    def run(names, n, temperature, size):
        todo = [p for p in problems if any(p.id not in done[name] for name in names)]
        for start in range(0, len(todo), size):
            chunk = todo[start : start + size]
            prompts = [model.chat(p.question) for p in chunk]
            t0 = time.perf_counter()
            outs = model.generate(
                prompts,
                SamplingParams(n=n, temperature=temperature, seed=start, max_new_tokens=args.max_new_tokens),
                Budget(),
            )
            wall = time.perf_counter() - t0
            all_tokens = sum(len(c.token_ids) for comps in outs for c in comps)
            for name in names:
                rows = []
                for problem, prompt, comps in zip(chunk, prompts, outs):
                    if problem.id in done[name]:
                        continue
                    res, used = decide(name, candidates(comps))
                    share = sum(len(c.completion.token_ids) for c in used) / max(all_tokens, 1)
                    rows.append(row(task, problem, res, used, len(model.encode(prompt)), model.shape, wall * share))
                append(files[name], rows)
            print(
                f"{'/'.join(names)}: {start + len(chunk)}/{len(todo)} problems, {all_tokens} tokens "
                f"in {wall:.0f} s ({all_tokens / wall:.1f} tok/s)",
                flush=True,
            )

    if model is not None:
        run(["greedy"], 1, 0.0, args.greedy_batch)
        run(["self_consistency_n8", "adaptive_consistency_n8"], 8, 0.7, args.sample_batch)
    rows = {name: read_results(p) for name, p in files.items()}
    common = set.intersection(*({r["id"] for r in rs} for rs in rows.values()))
    summaries = {name: summarize([r for r in rs if r["id"] in common]) for name, rs in rows.items()}
    for name, s in summaries.items():
        print(f"== {name}, the {len(common)} problems every strategy has done\n{format_summary(s)}")
    path = save(
        __file__,
        f"quality-{args.model}",
        {
            "model": args.model,
            "task": f"gsm8k test[:{args.limit}]",
            "max_new_tokens": args.max_new_tokens,
            "common_problems": len(common),
            "strategies": summaries,
            "all_done": {name: summarize(rs) for name, rs in rows.items()},
        },
    )
    # the table, plot and page of the leaderboard feature, read from the per-problem files as they are
    board = make_report(
        results_dir(__file__) / "leaderboard",
        [files["greedy"].parent],
        "greedy",
        f"GSM8K, first {args.limit} test problems, {args.model}, zero-shot",
        task,
    )
    print(f"table, plot and page: {board['paths'][-1].parent}; summary: {path}")
    print(json.dumps({k: round(v["accuracy"], 3) for k, v in summaries.items()}))


if __name__ == "__main__":
    main()
