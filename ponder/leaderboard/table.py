"""The leaderboard table: one row per (strategy, budget), its seeds pooled, from the cells a
report reads. Per row: accuracy with its 95% Wilson interval and the seeds' spread, coverage
(any candidate right), generated tokens, FLOPs, verifier calls and wall seconds per problem, the
share of problems the budget ran out on, a paired comparison against a baseline strategy at the
same budget (problems won / lost, two-sided sign test), and whether the row is on the Pareto
frontier (no other row is at least as accurate for at most its FLOPs)."""

from __future__ import annotations

import csv
import io
import json
import math
from statistics import pstdev

from ponder.bench import wilson

COLUMNS = (  # (key, header) of the Markdown and CSV tables
    ("strategy", "strategy"),
    ("budget", "budget"),
    ("seeds", "seeds"),
    ("problems", "problems"),
    ("accuracy", "accuracy"),
    ("accuracy_ci95", "95% CI"),
    ("seed_spread", "seed spread"),
    ("coverage", "coverage"),
    ("generated_tokens", "generated tokens"),
    ("flops", "FLOPs"),
    ("verifier_calls", "verifier calls"),
    ("seconds", "wall s"),
    ("budget_exhausted", "budget ran out"),
    ("errors", "errors"),
    ("vs_baseline", "vs baseline: won / lost (p)"),
    ("frontier", "frontier"),
)


def sign_test(won: int, lost: int) -> float:
    """Two-sided exact sign test: P(a split at least this uneven | wins and losses equally likely)."""
    n = won + lost
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(won, lost) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired(rows: dict, base: dict) -> dict:
    """Problems (id, seed) right in `rows` and wrong in `base` (won), the reverse (lost), over
    the problems both answered without an error."""
    both = rows.keys() & base.keys()
    won = sum(rows[k] and not base[k] for k in both)
    lost = sum(base[k] and not rows[k] for k in both)
    return {"won": won, "lost": lost, "p": sign_test(won, lost), "paired": len(both)}


def correct_by_problem(cells) -> dict:
    return {(r["id"], c.seed): bool(r["correct"]) for c in cells for r in c.rows if "error" not in r}


def summarize_row(strategy: str, budget, cells) -> dict:
    """One row of the table from the cells (one per seed) of a strategy at a budget."""
    ok = [r for c in cells for r in c.rows if "error" not in r]
    n = len(ok)
    mean = lambda f: sum(map(f, ok)) / n if n else 0.0
    seed_ok = [[r for r in c.rows if "error" not in r] for c in cells]
    per_seed = [sum(r["correct"] for r in rs) / len(rs) if rs else 0.0 for rs in seed_ok]
    correct = sum(r["correct"] for r in ok)
    return {
        "strategy": strategy,
        "budget": budget,
        "seeds": sorted(c.seed for c in cells),
        "problems": n,
        "errors": sum(len(c.rows) for c in cells) - n,
        "correct": correct,
        "accuracy": correct / n if n else 0.0,
        "accuracy_ci95": list(wilson(correct, n)),
        "seed_accuracies": per_seed,
        "seed_spread": {"min": min(per_seed), "max": max(per_seed), "std": pstdev(per_seed)},
        "coverage": mean(lambda r: r["pass_at_k"]),
        "generated_tokens": mean(lambda r: r["usage"]["generated_tokens"]),
        "flops": mean(lambda r: r["usage"]["flops"]),
        "verifier_calls": mean(lambda r: r["usage"]["verifier_calls"]),
        "seconds": mean(lambda r: r["usage"]["seconds"]),
        "budget_exhausted": mean(lambda r: r["budget_exhausted"]),
        "identities": [c.identity for c in cells],
        "config_hashes": [c.identity.get("config_hash") for c in cells],
        "cells": [str(c.path) for c in cells],
    }


def pareto(rows: list[dict]) -> None:
    """Mark `frontier` on each row no other row dominates (at least as accurate for at most its
    FLOPs, better in one)."""
    for r in rows:
        r["frontier"] = not any(
            o is not r
            and o["flops"] <= r["flops"]
            and o["accuracy"] >= r["accuracy"]
            and (o["flops"] < r["flops"] or o["accuracy"] > r["accuracy"])
            for o in rows
        )


def build_table(cells, baseline: str | None) -> list[dict]:
    """Rows by budget (ascending; unbudgeted last), then by accuracy (best first)."""
    groups: dict = {}
    for c in cells:
        groups.setdefault((c.strategy, c.budget), []).append(c)
    rows = [summarize_row(s, b, sorted(cs, key=lambda c: c.seed)) for (s, b), cs in groups.items()]
    rows.sort(key=lambda r: (r["budget"] is None, r["budget"] or 0, -r["accuracy"], r["strategy"]))
    for r in rows:
        base = groups.get((baseline, r["budget"]))
        if base is None or r["strategy"] == baseline:
            r["vs_baseline"] = None
            continue
        mine, theirs = correct_by_problem(groups[(r["strategy"], r["budget"])]), correct_by_problem(base)
        if len({c.seed for c in base}) == 1:  # a seedless baseline (greedy) pairs with every seed
            only = base[0].seed
            theirs = {(i, s): theirs[(i, only)] for (i, s) in mine if (i, only) in theirs}
        r["vs_baseline"] = {"baseline": baseline, **paired(mine, theirs)}
    pareto(rows)
    return rows


def cell_text(row: dict, key: str) -> str:
    v = row.get(key)
    if key == "budget":
        return "—" if v is None else f"{v:,.0f}"
    if key == "accuracy":
        return f"{row['correct']}/{row['problems']} = {v:.3f}"
    if key == "accuracy_ci95":
        return f"[{v[0]:.3f}, {v[1]:.3f}]"
    if key == "seeds":
        return ",".join(map(str, v))
    if key == "seed_spread":
        return "—" if len(row["seeds"]) < 2 else f"{v['min']:.3f}–{v['max']:.3f} (sd {v['std']:.3f})"
    if key == "vs_baseline":
        return "—" if v is None else f"{v['won']} / {v['lost']} ({v['p']:.2g})"
    if key == "frontier":
        return "★" if v else ""
    if key == "flops":
        return f"{v:.3g}"
    if key in ("coverage", "budget_exhausted"):
        return f"{v:.2f}"
    if isinstance(v, float):
        return f"{v:,.1f}"
    return str(v)


def markdown(rows: list[dict], warnings: list[str]) -> str:
    lines = ["| " + " | ".join(h for _, h in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell_text(r, k) for k, _ in COLUMNS) + " |" for r in rows]
    return "\n".join(lines + [""] + [f"> warning: {w}" for w in warnings]) + "\n"


def csv_text(rows: list[dict]) -> str:
    keys = [k for k, _ in COLUMNS if k not in ("accuracy_ci95", "seed_spread", "vs_baseline")]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(keys + ["ci95_low", "ci95_high", "seed_std", "won", "lost", "sign_p", "config_hashes"])
    for r in rows:
        vs = r["vs_baseline"] or {}
        w.writerow(
            [r[k] if k != "seeds" else " ".join(map(str, r[k])) for k in keys]
            + [*r["accuracy_ci95"], r["seed_spread"]["std"], vs.get("won"), vs.get("lost"), vs.get("p")]
            + [" ".join(map(str, r["config_hashes"]))]
        )
    return buf.getvalue()


def write_tables(rows: list[dict], warnings: list[str], meta: dict, out) -> None:
    """table.md, table.csv and table.json in `out`."""
    (out / "table.md").write_text(markdown(rows, warnings))
    (out / "table.csv").write_text(csv_text(rows))
    (out / "table.json").write_text(json.dumps({**meta, "warnings": warnings, "rows": rows}, indent=1) + "\n")
