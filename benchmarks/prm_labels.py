"""Seconds per problem of PRM rollout labelling (`ponder train-prm`'s first and costly stage)
when problems are labelled one at a time and in groups (`batch_problems`): the same problems,
the same settings, one process.

    PONDER_DATA=../shared/data python benchmarks/prm_labels.py --model qwen2.5-coder-0.5b --problems 4 --batches 1 4
"""

from __future__ import annotations

import argparse
import time

from common import save
from ponder.models import load_model
from ponder.tasks import GSM8K
from ponder.verifiers.prm_train import rollout_labels


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--problems", type=int, default=4)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--rollouts", type=int, default=2)
    ap.add_argument("--max-steps", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    args = ap.parse_args()
    model = load_model(args.model)
    task = GSM8K(split="train", limit=args.problems)
    problems = task.problems()
    rows = []
    for batch in args.batches:
        t0 = time.perf_counter()
        records = rollout_labels(
            model,
            task,
            problems,
            args.samples,
            args.rollouts,
            "\n\n",
            args.max_new_tokens,
            args.max_steps,
            0.8,
            0,
            batch_problems=batch,
        )
        seconds = time.perf_counter() - t0
        rows.append(
            {
                "batch_problems": batch,
                "seconds_per_problem": seconds / len(problems),
                "steps_labelled": sum(len(r["labels"]) for r in records),
                "good_share": sum(x > 0.5 for r in records for x in r["labels"])
                / max(1, sum(len(r["labels"]) for r in records)),
            }
        )
        print(rows[-1], flush=True)
    for r in rows:
        r["speedup"] = rows[0]["seconds_per_problem"] / r["seconds_per_problem"]
    save(
        __file__,
        f"prm-labels-{args.model}",
        {
            "model": args.model,
            "problems": args.problems,
            "samples": args.samples,
            "rollouts": args.rollouts,
            "max_steps": args.max_steps,
            "max_new_tokens": args.max_new_tokens,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
