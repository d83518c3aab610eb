"""Which layer of a frozen body tells good steps from bad? For every depth of the body, a value
head on the hidden state after that many layers (through the final norm, as the body cut there
gives it) is cross-validated over all the labelled problems by `ponder train-prm`'s own
`choose_depth` (4 folds split by problem, the L2 penalty chosen per depth), and its
out-of-fold scores are ranked against the labels: pooled step AUC, and within-problem AUC (what
a search compares). Labels are a `train-prm` folder's labels.jsonl; nothing is generated.

    python benchmarks/prm_layers.py --labels runs/prm/qwen2.5-coder-0.5b-smol/labels.jsonl --body smollm2-135m
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from common import save
from ponder.models import load_model
from ponder.verifiers.prm import QWEN_SYSTEM
from ponder.verifiers.prm_train import choose_depth, features, prm_network


def plot(rows: list[dict], path, body: str, problems: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    depth = [r["depth"] for r in rows]
    ax.fill_between(
        depth,
        [r["step_auc_ci95"][0] for r in rows],
        [r["step_auc_ci95"][1] for r in rows],
        alpha=0.2,
        label="pooled, 95% CI",
    )
    ax.plot(depth, [r["step_auc"] for r in rows], marker="o", label="pooled step AUC")
    ax.plot(depth, [r["within_problem_auc"] for r in rows], marker="s", label="within-problem AUC")
    ax.axhline(0.5, color="gray", lw=0.8, ls="--")
    ax.set_xlabel(f"layers of {body} read by the value head")
    ax.set_ylabel("cross-validated AUC")
    ax.set_title(f"PRM value head by depth, {problems} GSM8K train problems")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", required=True, help="a train-prm folder's labels.jsonl")
    ap.add_argument("--body", default="smollm2-135m")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--out", help="results name (default prm-layers-<body>)")
    args = ap.parse_args()
    records = [json.loads(line) for line in open(args.labels)]
    net, tokenizer = prm_network(load_model(args.body))
    depths = list(range(1, len(net.base_model.layers) + 1))
    t0 = time.perf_counter()
    feats = features(net, tokenizer, records, QWEN_SYSTEM, depths)
    seconds = time.perf_counter() - t0
    y = torch.tensor([x for r in records for x in r["labels"]])
    groups = [r["problem"] for r in records for _ in r["labels"]]
    _, cv = choose_depth({d: torch.cat(feats[d]) for d in depths}, y, groups, args.steps, 0.01, 0)
    rows = [
        {
            "depth": d,
            "l2": c["l2"],
            "step_auc": c["cv_step_auc"],
            "step_auc_ci95": c["cv_step_auc_ci95"],
            "within_problem_auc": c["cv_within_problem_auc"],
        }
        for d, c in cv.items()
    ]
    name = args.out or f"prm-layers-{args.body}"
    path = save(
        __file__,
        name,
        {
            "labels": args.labels,
            "body": args.body,
            "problems": len(set(groups)),
            "steps": len(y),
            "reachable_share": float((y > 0).float().mean()),
            "seconds_features": seconds,
            "by_depth": rows,
        },
    )
    plot(rows, path.with_suffix(".png"), args.body, len(set(groups)))


if __name__ == "__main__":
    main()
