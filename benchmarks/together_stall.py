"""Problems together without stalls: rows per generate call and seconds to the first finished
problem, with answer comparisons served outside the batch (ponder.together.Hub, now) and
through the batch queue as before (`QueuedHub`, the earlier behaviour, kept here only as the
baseline). Same model, strategy and problems, one process, fresh prefix caches per run.

    PONDER_DATA=../shared/data nice -n 10 python benchmarks/together_stall.py --model smollm2-135m \
        --limit 6 --n 4 --together 3 --max-new-tokens 48
"""

from __future__ import annotations

import argparse
import time

import ponder.together as together_module
from common import save
from ponder.generator import Generator
from ponder.models import load_model
from ponder.samplers import SelfConsistency
from ponder.tasks import GSM8K


class QueuedHub(together_module.Hub):
    """The earlier hub: every verifier call, answer comparisons too, waits for the batch barrier."""

    def is_side(self, call) -> bool:
        return False


class Counted:
    """The model, counting the rows of every generate call the hub makes."""

    def __init__(self, model):
        self.model, self.rows = model, []

    def generate(self, prompts, params, budget):
        self.rows.append(len(prompts) * params.n)
        return self.model.generate(prompts, params, budget)

    def generate_many(self, requests):
        self.rows.append(sum(len(p) * params.n for p, params, _ in requests))
        return self.model.generate_many(requests)

    def __getattr__(self, name):
        return getattr(self.model, name)


def measure(model, hub, problems, n: int, together: int, max_new_tokens: int) -> dict:
    counted = Counted(model.with_decoder(model.decoder))  # the same weights, an empty prefix cache
    gen = Generator(counted, SelfConsistency(n=n, max_new_tokens=max_new_tokens, temperature=0.7))
    together_module.Hub = hub
    t0, first, answers = time.perf_counter(), None, {}
    try:
        for i, result in gen.run_many([p.question for p in problems], together):
            first = first or time.perf_counter() - t0
            answers[i] = result.answer
    finally:
        together_module.Hub = Hub
    return {
        "hub": hub.__name__,
        "seconds": time.perf_counter() - t0,
        "seconds_to_first_result": first,
        "generate_calls": len(counted.rows),
        "mean_rows_per_generate_call": sum(counted.rows) / len(counted.rows),
        "rows_per_generate_call": counted.rows,
        "answers": [answers[i] for i in range(len(problems))],
    }


Hub = together_module.Hub


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--together", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    args = ap.parse_args()
    model = load_model(args.model)
    problems = GSM8K(limit=args.limit).problems()
    runs = [measure(model, h, problems, args.n, args.together, args.max_new_tokens) for h in (QueuedHub, Hub)]
    before, after = runs
    for r in runs:
        print({k: v for k, v in r.items() if k not in ("rows_per_generate_call", "answers")}, flush=True)
    ratios = {
        "rows_per_call_after_over_before": after["mean_rows_per_generate_call"] / before["mean_rows_per_generate_call"],
        "first_result_speedup": before["seconds_to_first_result"] / after["seconds_to_first_result"],
        "total_speedup": before["seconds"] / after["seconds"],
        "same_answers": before["answers"] == after["answers"],
    }
    print(ratios)
    save(__file__, f"stall-{args.model}", {"args": vars(args), "runs": runs, "ratios": ratios})


if __name__ == "__main__":
    main()
