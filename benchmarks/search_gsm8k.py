"""Accuracy against compute for every strategy on GSM8K at matched budgets: a thin call to
`ponder leaderboard` (ponder/leaderboard/), kept for its arguments. Each budget B (generated-token
equivalents) is enforced as B x 2 x (policy parameters) FLOPs, so the PRM's passes are paid from
the same budget; strategies are sized by the leaderboard's rule (ponder/leaderboard/sizing.py, the
rule this script has always used).

Cells go to benchmarks/results/search_gsm8k/<--out>/cells/ (resumable), the table, plot and page
beside them. The same run from the command line:

    ponder leaderboard model=qwen2.5-coder-0.5b verifier=prm verifier.path=runs/prm/qwen2.5-coder-0.5b \
        task.limit=100 budgets=[1000,2000] strategies=[greedy,self_consistency,...] together=10 out=...

Results recorded before the leaderboard existed (search-100/, search-100-cut/ and archive/, one
file per (strategy, budget) beside its settings) are read as they are by
`ponder leaderboard report sources=[...]` (see docs/benchmarks.md).

    PONDER_DATA=../shared/data python benchmarks/search_gsm8k.py --model qwen2.5-coder-0.5b \
        --prm runs/prm/qwen2.5-coder-0.5b --limit 100 --budgets 1000 2000 4000 8000
"""

from __future__ import annotations

import argparse

from common import results_dir

NAMES = (
    "greedy",
    "self_consistency",
    "best_of_n",
    "weighted_best_of_n",
    "particle_filter",
    "beam_search",
    "dvts",
    "astar",
    "mcts",
)


def strategies(budget: int) -> dict:
    """Every strategy built as the leaderboard sizes it for `budget` (used by together.py)."""
    from omegaconf import OmegaConf

    from ponder.config import instantiate
    from ponder.leaderboard.grid import strategy_yaml
    from ponder.leaderboard.sizing import SizingRule

    rule = SizingRule()
    return {
        name: instantiate(OmegaConf.create({**strategy_yaml(name), **rule.settings(name, budget)}), "strategy")
        for name in NAMES
    }


def compose_leaderboard(overrides: list[str]):
    from hydra import compose, initialize_config_module

    with initialize_config_module("ponder.configs", version_base=None):
        return compose("leaderboard", overrides=overrides)


def main():
    from ponder.leaderboard import make_report, run_grid

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--prm", help="PRM folder or hub id (default: the model itself as an LLM-judge PRM)")
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--budgets", type=int, nargs="+", default=[1000, 2000, 4000, 8000])
    ap.add_argument("--only", nargs="*", help="strategy names (default: all)")
    ap.add_argument("--out", default="search", help="results name: results/search_gsm8k/<name>/")
    ap.add_argument("--together", type=int, default=1, help="problems run at once, their model calls batched")
    args = ap.parse_args()
    out = results_dir(__file__) / args.out
    verifier = (
        ["verifier=prm", f"verifier.path={args.prm}"] if args.prm else ["verifier=llm_judge", "verifier.per_step=true"]
    )
    cfg = compose_leaderboard(
        [
            f"model={args.model}",
            *verifier,
            f"task.limit={args.limit}",
            f"budgets=[{','.join(map(str, args.budgets))}]",
            f"strategies=[{','.join(args.only or NAMES)}]",
            f"together={args.together}",
            f"out={out}",
            f"title='GSM8K, first {args.limit} test problems, {args.model}'",
        ]
    )
    run_grid(cfg)
    made = make_report(out, baseline="greedy", title=cfg.title)
    for r in made["rows"]:
        print(
            f"{r['strategy']} @ {r['budget']:g}: accuracy {r['accuracy']:.3f} "
            f"[{r['accuracy_ci95'][0]:.3f}, {r['accuracy_ci95'][1]:.3f}], {r['flops']:.3g} FLOPs"
        )
    print(f"table, plot and page: {out}")


if __name__ == "__main__":
    main()
