"""The leaderboard's static web page: `index.html` with its assets beside it (`data.js` holding
the table, every cell's settings and its problems; `app.js`; `style.css`; the plot), opened from
disk with no server. The table sorts by any column; a click on a row shows its cells' settings
and identity and, per problem, the question, the reference, the chosen answer and the candidates
with their scores."""

from __future__ import annotations

import html
import json
import shutil
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

TEXT_LIMIT = 4000  # characters of a chosen solution kept on the page


def page_problems(cell) -> list[dict]:
    """A cell's problems as the drill-down shows them."""
    shown = []
    for r in cell.rows:
        known = cell.problems.get(r["id"], {})
        shown.append(
            {
                "id": r["id"],
                "question": known.get("question"),
                "reference": r.get("reference", known.get("reference")),
                "answer": r.get("answer"),
                "correct": r.get("correct"),
                "error": r.get("error"),
                "text": (r.get("text") or "")[:TEXT_LIMIT],
                "candidates": [
                    {k: c.get(k) for k in ("answer", "scores", "correct", "finish_reason")}
                    for c in r.get("candidates", [])
                ],
            }
        )
    return shown


def write_page(rows: list[dict], cells, warnings: list[str], title: str, baseline: str | None, out: Path) -> Path:
    """Write the page into `out` (beside plot.svg, which the report draws first); return index.html."""
    index = {str(c.path): i for i, c in enumerate(cells)}
    data = {
        "title": title,
        "baseline": baseline,
        "made": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "warnings": warnings,
        "rows": [
            {**{k: v for k, v in r.items() if k != "identities"}, "cells": [index[p] for p in r["cells"]]} for r in rows
        ],
        "cells": [
            {
                "strategy": c.strategy,
                "budget": c.budget,
                "seed": c.seed,
                "path": str(c.path),
                "identity": c.identity,
                "settings": c.settings,
                "problems": page_problems(c),
            }
            for c in cells
        ],
    }
    # a script, not a JSON file: a page opened from disk may not fetch() its neighbours
    text = json.dumps(data, default=str).replace("</", "<\\/")
    (out / "data.js").write_text(f"window.LEADERBOARD = {text};\n")
    assets = resources.files("ponder.leaderboard") / "assets"
    for name in ("app.js", "style.css"):
        shutil.copyfile(str(assets / name), out / name)
    page = out / "index.html"
    page.write_text(
        f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<link rel="icon" href="data:,"><link rel="stylesheet" href="style.css"></head>
<body>
<h1 id="title"></h1>
<p class="meta" id="meta"></p>
<div id="warnings"></div>
<table id="board"><thead></thead><tbody></tbody></table>
<p class="meta">Click a column to sort, a row for its settings and problems. ★: on the Pareto frontier.</p>
<img class="plot" src="plot.svg" alt="accuracy against FLOPs per problem">
<div id="detail"></div>
<script src="data.js"></script>
<script src="app.js"></script>
</body></html>
"""
    )
    return page
