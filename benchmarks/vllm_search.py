"""Step-level search on vLLM against the HF backend (issue 28): beam search and particle filtering
with the policy as its own LLM-judge PRM on the first GSM8K test problems, at one budget given in
generated-token equivalents and enforced as a FLOP limit (as `search_gsm8k.py` sizes and pays
for strategies). Per backend and strategy: accuracy, the wall time of the whole run (problems
run `--together`), and how many problems went over the budget (the target: none, on both).
Backends alternate per strategy, in one sitting.

    PONDER_DATA=../shared/data python benchmarks/vllm_search.py --model qwen2.5-coder-0.5b --limit 20 --together 5
"""

from __future__ import annotations

import argparse
import json
import time

from common import results_dir, save
from search_gsm8k import strategies
from ponder.bench import read_results, run_benchmark
from ponder.generator import Generator
from ponder.leaderboard.sizing import SizingRule
from ponder.models import load_model
from ponder.tasks import GSM8K
from ponder.verifiers import LLMJudge


RULE = SizingRule()  # the leaderboard's sizing rule; its step settings identify the runs
STEP = dict(max_step_tokens=RULE.max_step_tokens, max_steps=RULE.max_steps, temperature=RULE.step_temperature)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--budget", type=int, default=2000)
    ap.add_argument("--strategies", nargs="+", default=["beam_search", "particle_filter"])
    ap.add_argument("--backends", nargs="+", default=["hf", "vllm"])
    ap.add_argument("--together", type=int, default=4)
    ap.add_argument("--block-size", type=int, help="the vLLM engine's KV block size (default: ponder's)")
    args = ap.parse_args()
    engine = {"block_size": args.block_size} if args.block_size else {}
    models = {b: load_model(args.model, backend=b, **({"vllm": engine} if b == "vllm" else {})) for b in args.backends}
    tag = f"-block{args.block_size}" if args.block_size else ""
    task, folder = GSM8K(limit=args.limit), results_dir(__file__) / f"{args.model}-b{args.budget}-n{args.limit}{tag}"
    rows = []
    for name in args.strategies:
        for backend, model in models.items():
            limit = args.budget * 2.0 * model.shape.params
            gen = Generator(
                model, strategies(args.budget)[name], LLMJudge(model, per_step=True), budget={"max_flops": limit}
            )
            out = folder / f"{backend}-{name}.jsonl"
            fresh = not read_results(out)  # a resumed run's wall time would not be the whole run's
            t = time.perf_counter()
            s = run_benchmark(
                gen,
                task,
                out,
                settings={
                    "model": args.model,
                    "backend": backend,
                    "strategy": name,
                    "budget": args.budget,
                    "step": STEP,
                },
                together=args.together,
            )
            wall = time.perf_counter() - t
            done = [r for r in read_results(out) if "usage" in r]
            over = sum(r["usage"]["flops"] > limit * (1 + 1e-9) for r in done)
            rows.append(
                {
                    "strategy": name,
                    "backend": backend,
                    "accuracy": s["accuracy"],
                    "accuracy_ci95": s["accuracy_ci95"],
                    "wall_seconds": wall if fresh else None,
                    "problems_over_budget": over,
                    "max_flops_used_share": max(r["usage"]["flops"] / limit for r in done),
                    "mean_verifier_calls": sum(r["usage"]["verifier_calls"] for r in done) / len(done),
                    "errors": s["errors"],
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    for name in args.strategies:
        by = {r["backend"]: r for r in rows if r["strategy"] == name}
        if all(by.get(b, {}).get("wall_seconds") for b in ("hf", "vllm")):
            print(f"{name}: vLLM {by['hf']['wall_seconds'] / by['vllm']['wall_seconds']:.2f}x faster than HF")
    path = save(
        __file__,
        f"vllm_search-{args.model}-b{args.budget}-n{args.limit}{tag}-{'-'.join(args.backends)}",
        {"model": args.model, "budget": args.budget, "problems": args.limit, "together": args.together, "rows": rows},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
