"""Seconds per problem of a strategy on the same GSM8K test problems run one at a time and K at a
time (`ponder.together`: every waiting problem's model calls served in one batched call), one
process, and whether the results are the same. Each run gets fresh prefix caches (the model's
and the PRM's), so the later runs are not served by the earlier ones' work.

    PONDER_DATA=../shared/data python benchmarks/together.py --model qwen2.5-coder-0.5b \
        --prm runs/prm/qwen2.5-coder-0.5b-smol --strategies beam_search self_consistency --limit 4 --together 1 4
"""

from __future__ import annotations

import argparse
import time

from common import save
from ponder.generator import Generator
from ponder.models import load_model
from ponder.tasks import GSM8K
from ponder.verifiers import ProcessRewardModel
from search_gsm8k import strategies


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--prm", required=True, help="PRM folder or hub id, for strategies that use one")
    ap.add_argument("--strategies", nargs="+", default=["beam_search", "self_consistency"])
    ap.add_argument("--budget", type=int, default=1000, help="generated-token equivalents per problem (as FLOPs)")
    ap.add_argument("--limit", type=int, default=4)
    ap.add_argument("--together", type=int, nargs="+", default=[1, 4])
    args = ap.parse_args()
    model = load_model(args.model)
    task = GSM8K(limit=args.limit)
    problems = task.problems()
    rows = []
    for name in args.strategies:
        strategy = strategies(args.budget)[name]
        first, first_seconds = None, None
        for k in args.together:
            fresh = model.with_decoder(model.decoder)  # the same weights, an empty prefix cache
            prm = ProcessRewardModel(args.prm) if strategy.uses_verifier else None
            gen = Generator(fresh, strategy, prm, budget={"max_flops": args.budget * 2.0 * model.shape.params})
            t0 = time.perf_counter()
            results = dict(gen.run_many([p.question for p in problems], together=k))
            seconds = time.perf_counter() - t0
            results = [results[i] for i in range(len(problems))]
            first, first_seconds = first or results, first_seconds or seconds
            rows.append(
                {
                    "strategy": name,
                    "together": k,
                    "seconds_per_problem": seconds / len(problems),
                    "speedup": first_seconds / seconds,
                    "same_text_as_first": sum(a.text == b.text for a, b in zip(results, first)),
                    "correct": sum(bool(task.check(r.text, p)) for p, r in zip(problems, results)),
                    "mean_generated_tokens": sum(r.usage.generated_tokens for r in results) / len(results),
                }
            )
            print(rows[-1], flush=True)
    save(
        __file__,
        f"together-{args.model}",
        {"model": args.model, "prm": args.prm, "budget": args.budget, "problems": args.limit, "rows": rows},
    )


if __name__ == "__main__":
    main()
