"""The text shown for self-consistency's winning answer, chosen by mean log-probability (the
earlier rule) or by `ponder.samplers.self_consistency.shown_text_key` (a finished solution first):
on recorded GSM8K candidates, accuracy of the shown text and how many shown texts were cut off
by the length or budget limit. Recorded candidates carry no text, so the repetition part of the
rule cannot be measured here (a finished candidate stands in for a clean one).

    python benchmarks/shown_text.py benchmarks/results/search_gsm8k/search-100/*self_consistency*.jsonl
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import save
from ponder.bench import read_results


def shown(members: list[dict], finished_first: bool) -> dict:
    key = (lambda c: (c["finish_reason"] == "stop", c["mean_logprob"])) if finished_first else None
    return max(members, key=key or (lambda c: c["mean_logprob"]))


def measure(path: Path) -> dict:
    rows = [r for r in read_results(path) if r.get("candidates") and r.get("answer") is not None]
    out = {"file": str(path), "problems": len(rows)}
    for name, first in (("mean_logprob", False), ("finished_first", True)):
        picks = [
            shown([c for c in r["candidates"] if c["answer"] == r["answer"]] or r["candidates"], first) for r in rows
        ]
        out[name] = {
            "correct": sum(p["correct"] for p in picks),
            "unfinished_shown": sum(p["finish_reason"] != "stop" for p in picks),
        }
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", type=Path)
    args = ap.parse_args()
    runs = [measure(f) for f in args.files]
    for r in runs:
        print(r)
    save(__file__, "shown-text-search-100", {"runs": runs})


if __name__ == "__main__":
    main()
