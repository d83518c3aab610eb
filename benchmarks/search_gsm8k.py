"""Accuracy against compute for every strategy on GSM8K at matched budgets (issue: step-level
search). Each budget B is given in generated-token equivalents and enforced as a FLOP limit,
B x (2 x policy parameters), so the PRM's and verifier's forward passes are paid from the same
budget as generation. Strategies are sized to about what B pays for (the budget is what
stops them).

Per (strategy, budget) results go to benchmarks/results/search_gsm8k/search/ (resumable: rerun to go on);
the summary to search-<model>.json and the plot (accuracy against budget, a line per strategy)
to search-<model>.png; `--out NAME` puts all three under NAME instead (a run kept apart). The
summary and plot cover every (strategy, budget) the folder holds for --limit problems with
this PRM, so `--only` adds a strategy's points without dropping the others.

    PONDER_DATA=../shared/data python benchmarks/search_gsm8k.py --model qwen2.5-coder-0.5b \
        --prm runs/prm/qwen2.5-coder-0.5b --limit 100 --budgets 1000 2000 4000 8000
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import results_dir, save
from ponder.bench import run_benchmark
from ponder.generator import Generator
from ponder.models import load_model
from ponder.samplers import BestOfN, Greedy, SelfConsistency, WeightedBestOfN
from ponder.search import DVTS, MCTS, AStar, BeamSearch, ParticleFilter
from ponder.tasks import GSM8K
from ponder.verifiers import LLMJudge, ProcessRewardModel
from ponder.verifiers.prm_train import trained_prm

STEP = dict(max_step_tokens=160, max_steps=10, temperature=0.8)


def strategies(budget: int):
    # about as many whole solutions as the budget pays for (Qwen2.5-Coder-0.5B writes ~300
    # tokens): with more, parallel samples all stop part-way and none has an answer
    n = max(2, budget // 400)
    width = 4 if n >= 8 else 2
    n_beam = max(width, n // width * width)
    return {
        "greedy": Greedy(max_new_tokens=512),
        "self_consistency": SelfConsistency(n=n, temperature=0.7, max_new_tokens=512),
        "best_of_n": BestOfN(n=n, temperature=0.7, max_new_tokens=512),
        "weighted_best_of_n": WeightedBestOfN(n=n, temperature=0.7, max_new_tokens=512),
        "particle_filter": ParticleFilter(n=min(n, 16), **STEP),
        "beam_search": BeamSearch(n=n_beam, beam_width=width, **STEP),
        "dvts": DVTS(n=n_beam, beam_width=width, **STEP),
        "astar": AStar(k=4, batch=2, threshold=0.8, max_expansions=4 * n, **STEP),
        "mcts": MCTS(k=3, simulations=4 * n, **STEP),
    }


def prm_record(prm: str | None):
    """How results files record the PRM: for a `train-prm` folder, what it was trained on."""
    return json.loads(json.dumps(trained_prm(prm) or prm))


def made_by(model: str, prm: str | None, budget: int, strategy) -> dict:
    """What a results file was made with; a rerun with anything else is refused (a PRM retrained
    into the same folder must not add to the old one's results)."""
    settings = {
        "model": model,
        "prm": prm_record(prm) if strategy.uses_verifier else None,
        "budget": budget,
        "strategy": vars(strategy),
    }
    return json.loads(json.dumps(settings, default=repr))


def kept(folder: Path, prefix: str, problems: int, prm) -> dict:
    """Summaries of every run in `folder` over `problems` problems with this PRM (`prm_record`),
    by strategy (in `strategies` order) and budget (ascending), so that a run with --only or
    fewer --budgets still plots all the folder holds."""
    summary: dict = {}
    for name in strategies(1000):
        for f in folder.glob(f"{prefix}{name}-b*.jsonl.summary.json"):
            budget = int(f.name.rsplit("-b", 1)[1].split(".")[0])
            own = Path(
                str(f).replace(".summary.json", ".settings.json")
            )  # res.jsonl.settings.json; older: res.settings.json
            made = json.loads(
                (own if own.is_file() else Path(str(f).replace(".jsonl.summary.json", ".settings.json"))).read_text()
            )
            s = json.loads(f.read_text())
            if s["problems"] == problems and made["prm"] in (None, prm):
                summary.setdefault(name, {})[budget] = s
    for name, by in summary.items():  # paired: the problems one got right and the other wrong
        for budget, s in by.items():
            s["paired"] = {
                other: paired(folder / f"{prefix}{name}-b{budget}.jsonl", folder / f"{prefix}{other}-b{budget}.jsonl")
                for other in ("greedy", "self_consistency")
                if other != name and budget in summary.get(other, {})
            }
    return {name: {str(b): by[b] for b in sorted(by)} for name, by in summary.items()}


def paired(a: Path, b: Path) -> dict:
    """Problems a got right and b wrong (won) and the reverse (lost), with the two-sided sign
    test's p on those, over the problems both answered."""
    from scipy.stats import binomtest

    right = [{r["id"]: r["correct"] for r in map(json.loads, f.read_text().splitlines())} for f in (a, b)]
    both = right[0].keys() & right[1].keys()
    won = sum(right[0][i] and not right[1][i] for i in both)
    lost = sum(right[1][i] and not right[0][i] for i in both)
    return {"won": won, "lost": lost, "p": float(binomtest(won, won + lost).pvalue) if won + lost else 1.0}


def plot(summary: dict, path, model: str, problems: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    for i, (name, by_budget) in enumerate(summary.items()):
        budgets = sorted(by_budget, key=int)
        dodge = 2 ** (0.03 * (i - (len(summary) - 1) / 2))  # strategies side by side at each budget
        acc = [by_budget[b]["accuracy"] for b in budgets]
        lo = [by_budget[b]["accuracy"] - by_budget[b]["accuracy_ci95"][0] for b in budgets]
        hi = [by_budget[b]["accuracy_ci95"][1] - by_budget[b]["accuracy"] for b in budgets]
        ax.errorbar([int(b) * dodge for b in budgets], acc, yerr=[lo, hi], marker="o", capsize=3, label=name)
    ax.set_xscale("log", base=2)
    ticks = sorted({int(b) for by_budget in summary.values() for b in by_budget})
    ax.set_xticks(ticks, [f"{t:,}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("budget per problem (generated-token equivalents, FLOP-enforced)")
    ax.set_ylabel("accuracy (95% CI)")
    ax.set_title(f"GSM8K, first {problems} test problems, {model}")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))  # outside: it hid points
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--prm", help="PRM folder or hub id (default: the model itself as an LLM-judge PRM)")
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--budgets", type=int, nargs="+", default=[1000, 2000, 4000, 8000])
    ap.add_argument("--only", nargs="*", help="strategy names (default: all)")
    ap.add_argument(
        "--out", help="results name (default search-<model>); per-run files go to results/search_gsm8k/<name>/"
    )
    ap.add_argument("--together", type=int, default=1, help="problems run at once, their model calls batched")
    args = ap.parse_args()
    model = load_model(args.model)
    prm = ProcessRewardModel(args.prm) if args.prm else LLMJudge(model, per_step=True)
    per_token = 2.0 * model.shape.params
    tag = "prm" if args.prm else "judge"
    task = GSM8K(limit=args.limit)
    folder = results_dir(__file__) / (args.out or "search")
    for budget in args.budgets:
        for name, strategy in strategies(budget).items():
            if args.only and name not in args.only:
                continue
            gen = Generator(
                model, strategy, prm if strategy.uses_verifier else None, budget={"max_flops": budget * per_token}
            )
            out = folder / f"{args.model}-{tag}-{name}-b{budget}.jsonl"
            s = run_benchmark(
                gen, task, out, settings=made_by(args.model, args.prm, budget, strategy), together=args.together
            )
            print(
                f"{name} @ {budget}: accuracy {s['accuracy']:.3f} {s['accuracy_ci95']}, "
                f"{s['mean_generated_tokens']:.0f} tokens, {s['mean_flops']:.3g} FLOPs",
                flush=True,
            )
    summary = kept(folder, f"{args.model}-{tag}-", args.limit, prm_record(args.prm))
    path = save(
        __file__,
        args.out or f"search-{args.model}",
        {
            "model": args.model,
            "prm": args.prm or "llm_judge (self, per step)",
            "problems": args.limit,
            "budgets": sorted({int(b) for d in summary.values() for b in d}),
            "summary": summary,
        },
    )
    plot(summary, path.with_suffix(".png"), args.model, args.limit)
    print(json.dumps({k: {b: round(v["accuracy"], 3) for b, v in d.items()} for k, d in summary.items()}))


if __name__ == "__main__":
    main()
