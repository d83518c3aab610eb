"""Accuracy and compute of strategies on the first --limit GSM8K test problems, one model load
for all strategies. Each strategy's per-problem results go to benchmarks/results/quality/
(resumable: rerun to continue). Strategies advance together in chunks of --step problems,
so a run stopped early still compares them on the same problems; the summary to quality-<model>.json and a plot of accuracy
against generated tokens per problem (95% Wilson intervals) to quality-<model>.png.

    python benchmarks/quality_gsm8k.py --model qwen2.5-coder-0.5b --limit 100
"""
from __future__ import annotations

import argparse
import json

from common import RESULTS, save
from ponder.bench import format_summary, run_benchmark
from ponder.generator import Generator
from ponder.models import load_model
from ponder.samplers import AdaptiveConsistency, Greedy, SelfConsistency
from ponder.tasks import GSM8K


def strategies(max_new_tokens: int):
    return {
        "greedy": Greedy(max_new_tokens=max_new_tokens),
        "self_consistency_n8": SelfConsistency(n=8, temperature=0.7, max_new_tokens=max_new_tokens),
        "adaptive_consistency_n8": AdaptiveConsistency(n=8, batch=4, min_samples=4, threshold=0.75,
                                                       temperature=0.7, max_new_tokens=max_new_tokens),
    }


def plot(summaries: dict, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, s in summaries.items():
        lo, hi = s["accuracy_ci95"]
        ax.errorbar([s["mean_generated_tokens"]], [s["accuracy"]], yerr=[[s["accuracy"] - lo], [hi - s["accuracy"]]],
                    fmt="o", capsize=4, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("generated tokens per problem (log)")
    ax.set_ylabel("accuracy (95% CI)")
    ax.set_title(f"GSM8K, first {next(iter(summaries.values()))['problems']} test problems")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--max-new-tokens", type=int, default=320)
    ap.add_argument("--step", type=int, default=10)
    ap.add_argument("--only", nargs="*", help="strategy names to run (default: all)")
    args = ap.parse_args()
    model = load_model(args.model)
    chosen = {k: v for k, v in strategies(args.max_new_tokens).items() if not args.only or k in args.only}
    for end in range(min(args.step, args.limit), args.limit + args.step, args.step):
        end = min(end, args.limit)
        task, summaries = GSM8K(limit=end), {}
        for name, strategy in chosen.items():
            out = RESULTS / "quality" / f"{args.model}-{name}-t{args.max_new_tokens}.jsonl"
            summaries[name] = run_benchmark(Generator(model, strategy), task, out)
            print(f"== {name}, first {end}\n{format_summary(summaries[name])}", flush=True)
        path = save(f"quality-{args.model}", {"model": args.model, "task": f"gsm8k test[:{end}]",
                                              "max_new_tokens": args.max_new_tokens, "strategies": summaries})
        plot(summaries, path.with_suffix(".png"))
        if end == args.limit:
            break
    print(json.dumps({k: round(v["accuracy"], 3) for k, v in summaries.items()}))


if __name__ == "__main__":
    main()
