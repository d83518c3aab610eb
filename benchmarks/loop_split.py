"""Where the seconds of speculative decoding go: ponder's draft-model decoder against
transformers' assisted generation (the same target and the very same draft network), or
ponder's n-gram decoder against transformers' prompt lookup (as many tokens), greedy, batch 1.
Every forward call of the two networks is timed (one token, or several: a prefill or a
verifying pass), so equal pass counts with unequal totals point at per-pass cost, and time
outside the forwards is each loop's own work. The two run in turn, `--repeats` times, with
ponder's prefix cache cleared before every prompt.

    PONDER_DATA=../shared/data python benchmarks/loop_split.py --task gsm8k --prompts 2 \
        --decoder draft_model:num_tokens=20,min_confidence=0.4
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

from common import save
from speculative import hf_assisted, task_prompts, timed, with_decoder
from ponder import load_model
from ponder.speculative import NGramProposer


def time_forwards(network, name: str, into: dict) -> None:
    """Count and time `network`'s forward calls into into[name + ' 1 token' / ' n tokens']."""
    forward = network.forward

    def timed_forward(*args, **kwargs):
        t = time.perf_counter()
        out = forward(*args, **kwargs)
        ids = kwargs.get("input_ids")
        cell = into[f"{name} {'1 token' if ids is not None and ids.shape[1] == 1 else 'n tokens'}"]
        cell[0] += 1
        cell[1] += time.perf_counter() - t
        return out

    network.forward = timed_forward


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", default="qwen2.5-coder-1.5b")
    ap.add_argument(
        "--decoder",
        default="draft_model:num_tokens=20,min_confidence=0.4",
        help="a draft_model or ngram decoder, NAME[:key=value,...] as in speculative.py",
    )
    ap.add_argument("--task", default="gsm8k", choices=["gsm8k", "humaneval"])
    ap.add_argument("--prompts", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default="loop-split")
    args = ap.parse_args()

    target = load_model(args.target)
    spec = with_decoder(target, args.decoder)
    proposer = spec.decoder.proposer
    if hasattr(proposer, "draft"):
        draft = proposer.draft.network
        how, drafter = {"assistant_model": draft}, {"draft": proposer.draft.name, "draft dtype": str(draft.dtype)}
    elif isinstance(proposer, NGramProposer):
        draft, how, drafter = None, {"prompt_lookup_num_tokens": proposer.num_tokens}, {}
    else:
        raise SystemExit(f"--decoder {args.decoder}: only draft_model and ngram have a transformers counterpart")
    prompts = task_prompts(target, args.task, args.prompts)
    calls: dict = defaultdict(lambda: [0, 0.0])
    time_forwards(target.network, "target", calls)
    if draft is not None:
        time_forwards(draft, "draft", calls)
    runs, outs = [], {}
    for rep in range(args.repeats):
        for name in ("ponder", "transformers"):
            calls.clear()
            if name == "ponder":
                outs[name], secs = timed(spec, prompts, 1, args.tokens)
            else:
                outs[name], secs = hf_assisted(target, prompts, args.tokens, **how)
            inside = sum(s for _, s in calls.values())
            runs.append(
                {
                    "loop": name,
                    "repeat": rep,
                    "seconds": round(secs, 2),
                    "outside forwards": round(secs - inside, 2),
                    **{k: {"calls": n, "seconds": round(s, 2)} for k, (n, s) in sorted(calls.items())},
                }
            )
            print(runs[-1], flush=True)
    path = save(
        __file__,
        args.out,
        {
            "target": args.target,
            **drafter,
            "decoder": args.decoder,
            "task": args.task,
            "prompts": args.prompts,
            "tokens": args.tokens,
            "same outputs": outs["ponder"] == outs["transformers"],
            "runs": runs,
        },
    )
    print("saved", path)


if __name__ == "__main__":
    main()
