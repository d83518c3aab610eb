"""Choosers compared on the same samples: a results file from `search_gsm8k.py` (or `ponder
bench`) keeps every candidate's answer, verdict and verifier score, so the majority vote, the
verifier's top pick (best-of-N) and the verifier-weighted vote (weighted best-of-N) can be
scored on exactly the candidates one run drew. What differs between them is then the rule
alone, not the samples.

    python benchmarks/choosers.py \
        benchmarks/results/search_gsm8k/search-100/qwen2.5-coder-0.5b-prm-weighted_best_of_n-b2000.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from scipy.stats import binomtest

from ponder.bench import read_results, wilson
from ponder.verifiers.math import answers_equal


def groups(cands: list[dict]) -> list[list[dict]]:
    """Candidates with an answer, grouped by equal answers (math-verify's equality)."""
    out: list[list[dict]] = []
    for c in cands:
        if c["answer"] is None:
            continue
        g = next((g for g in out if answers_equal(g[0]["answer"], c["answer"])), None)
        (g.append(c) if g is not None else out.append([c]))
    return out


def score(c: dict, key: str) -> float:
    s = c["scores"].get(key, float("-inf"))
    return s if math.isfinite(s) else float("-inf")


def choose(cands: list[dict], key: str) -> dict[str, bool]:
    """Whether each rule's choice is right. Vote ties go to the higher mean log-probability
    (as self-consistency breaks them); the weighted vote counts an unscored sample as 0."""
    gs = groups(cands)
    mean_lp = lambda g: sum(c["mean_logprob"] for c in g) / len(g)
    top = max(cands, key=lambda c: score(c, key)) if cands else None
    return {
        "vote": bool(gs) and max(gs, key=lambda g: (len(g), mean_lp(g)))[0]["correct"],
        "verifier_top": bool(top) and top["correct"],
        "weighted_vote": bool(gs) and max(gs, key=lambda g: sum(max(score(c, key), 0.0) for c in g))[0]["correct"],
        "any (coverage)": any(c["correct"] for c in cands),
    }


def compare(path: Path, key: str) -> dict:
    rows = [r for r in read_results(path) if "candidates" in r]
    if not rows:
        raise SystemExit(f"{path} has no records with candidates (written before records kept them?)")
    picks = [choose(r["candidates"], key) for r in rows]
    out = {"file": str(path), "problems": len(rows), "verifier": key, "rules": {}}
    for rule in picks[0]:
        right = sum(p[rule] for p in picks)
        out["rules"][rule] = {"accuracy": right / len(rows), "accuracy_ci95": wilson(right, len(rows))}
    for a, b in (("verifier_top", "vote"), ("weighted_vote", "vote"), ("weighted_vote", "verifier_top")):
        won = sum(p[a] and not p[b] for p in picks)
        lost = sum(p[b] and not p[a] for p in picks)
        out["rules"][a][f"vs {b}"] = {
            "won": won,
            "lost": lost,
            "p": float(binomtest(won, won + lost).pvalue) if won + lost else 1.0,
        }
    return out


def plot(out: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rules = out["rules"]
    acc = [s["accuracy"] for s in rules.values()]
    err = [
        [a - s["accuracy_ci95"][0] for a, s in zip(acc, rules.values())],
        [s["accuracy_ci95"][1] - a for a, s in zip(acc, rules.values())],
    ]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(list(rules), acc, yerr=err, capsize=4, color=["C0", "C1", "C2", "0.7"])
    ax.set_ylabel("accuracy (95% CI)")
    ax.set_title(f"{out['problems']} problems, the same samples, chosen by each rule", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path, help="a results .jsonl whose records keep their candidates")
    ap.add_argument("--verifier", default="prm", help="the score key candidates were scored under")
    args = ap.parse_args()
    out = compare(args.results, args.verifier)
    for rule, s in out["rules"].items():
        lo, hi = s["accuracy_ci95"]
        pairs = "  ".join(
            f"{k}: won {v['won']} lost {v['lost']} p={v['p']:.2g}" for k, v in s.items() if k.startswith("vs")
        )
        print(f"{rule:15s} {s['accuracy']:.3f} [{lo:.3f}, {hi:.3f}]  {pairs}")
    dest = args.results.with_suffix(".choosers.json")
    dest.write_text(json.dumps(out, indent=2) + "\n")
    plot(out, dest.with_suffix(".png"))
    print(f"wrote {dest} and {dest.with_suffix('.png')}")


if __name__ == "__main__":
    main()
