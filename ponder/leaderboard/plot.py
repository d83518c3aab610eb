"""The leaderboard plot: accuracy against FLOPs spent per problem (log axis), a line per strategy
through its budgets, the 95% interval as a band, and the Pareto frontier; PNG and SVG."""

from __future__ import annotations

import textwrap
from pathlib import Path


def plot(rows: list[dict], out: Path, title: str) -> list[Path]:
    """Draw the table's rows to `out`/plot.png and plot.svg; return the two paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.8))
    strategies = list(dict.fromkeys(r["strategy"] for r in rows))
    for i, name in enumerate(strategies):
        mine = sorted((r for r in rows if r["strategy"] == name and r["flops"] > 0), key=lambda r: r["flops"])
        if not mine:
            continue
        x = [r["flops"] for r in mine]
        colour = plt.cm.tab10(i % 10)
        ax.plot(x, [r["accuracy"] for r in mine], marker="o", color=colour, label=name)
        lo, hi = zip(*(r["accuracy_ci95"] for r in mine))
        if len(mine) > 1:
            ax.fill_between(x, lo, hi, color=colour, alpha=0.12, linewidth=0)
        else:  # one point has no band to draw: its interval as an error bar
            acc = mine[0]["accuracy"]
            ax.errorbar(x, [acc], yerr=[[acc - lo[0]], [hi[0] - acc]], color=colour, capsize=3)
    front = sorted((r for r in rows if r.get("frontier") and r["flops"] > 0), key=lambda r: r["flops"])
    if front:
        ax.step(
            [r["flops"] for r in front],
            [r["accuracy"] for r in front],
            where="post",
            color="black",
            linestyle="--",
            linewidth=1,
            label="Pareto frontier",
        )
    ax.set_xscale("log")
    ax.set_xlabel("FLOPs per problem (log), generation + verifier + draft")
    ax.set_ylabel("accuracy (95% Wilson interval)")
    ax.set_title("\n".join(textwrap.wrap(title, 70)), fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    fig.tight_layout()
    paths = [out / "plot.png", out / "plot.svg"]
    for path in paths:
        fig.savefig(path, dpi=120)
    plt.close(fig)
    return paths
