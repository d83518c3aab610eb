"""The text shown for self-consistency's winning answer, chosen by mean log-probability (the
earlier rule) or by `ponder.samplers.self_consistency.shown_text_key` (a finished solution that
does not repeat itself first): on recorded GSM8K candidates, accuracy of the shown text and how
many shown texts are degenerate: cut off by the length or budget limit, or (where the rows record
it, `ponder bench` since 2026-12-02) repeating a sentence three times or more
(`self_consistency.repetitive`). Older rows carry no repetition flag: there a finished candidate
stands in for a clean one.

    python benchmarks/shown_text.py benchmarks/results/vllm_sc/sc8-qwen05-vllm-100.jsonl
    python benchmarks/shown_text.py benchmarks/results/search_gsm8k/search-100/*self_consistency*.jsonl
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import save
from ponder.bench import read_results


def shown(members: list[dict], finished_first: bool) -> dict:
    """The rules as `shown_text_key` states them, on recorded candidates."""
    if not finished_first:
        return max(members, key=lambda c: c["mean_logprob"])
    return max(members, key=lambda c: (c["finish_reason"] == "stop", not c.get("repetitive"), c["mean_logprob"]))


def measure(path: Path) -> dict:
    rows = [r for r in read_results(path) if r.get("candidates") and r.get("answer") is not None]
    flagged = all("repetitive" in c for r in rows for c in r["candidates"])
    out = {"file": str(path), "problems": len(rows), "repetition_recorded": flagged}
    for name, first in (("mean_logprob", False), ("finished_first", True)):
        picks = [
            shown([c for c in r["candidates"] if c["answer"] == r["answer"]] or r["candidates"], first) for r in rows
        ]
        out[name] = {
            "correct": sum(p["correct"] for p in picks),
            "unfinished_shown": sum(p["finish_reason"] != "stop" for p in picks),
            "repetitive_shown": sum(bool(p.get("repetitive")) for p in picks) if flagged else None,
            "degenerate_shown": sum(p["finish_reason"] != "stop" or bool(p.get("repetitive")) for p in picks),
        }
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--name", default="shown-text-search-100", help="the results file's name")
    args = ap.parse_args()
    runs = [measure(f) for f in args.files]
    for r in runs:
        print(r)
    save(__file__, args.name, {"runs": runs})


if __name__ == "__main__":
    main()
