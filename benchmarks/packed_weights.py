"""Packed linear weights on this CPU (`model.packed_weights`): the cost of one forward pass
over w new tokens after a 256-token context, relative to one token's, and greedy decoding
tokens/s at batch 1 and 4 on GSM8K prompts, with dense weights and then with the same weights
packed, in one process; and whether packed greedy output equals dense greedy output.

    PONDER_DATA=../shared/data python benchmarks/packed_weights.py --model qwen2.5-coder-1.5b
"""

from __future__ import annotations

import argparse

from common import save
from speculative import pass_cost, same, timed
from ponder import load_model
from ponder.models.cpu_linear import pack_linears
from ponder.tasks import GSM8K


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=64)
    args = ap.parse_args()
    model = load_model(args.model, packed_weights="off")
    prompts = [model.chat(p.question) for p in GSM8K(limit=args.prompts)]
    timed(model, prompts[:1], 1, 4)  # warm-up
    result, outs = {"model": args.model, "tokens": args.tokens, "prompts": args.prompts}, {}
    for mode in ("dense", "packed"):
        if mode == "packed":
            pack_linears(model.network)
            timed(model, prompts[:1], 1, 4)
        cost = pass_cost(model)
        row = {"one_token_seconds": cost["one_token_seconds"], "pass_cost_relative": cost["relative"]}
        print(
            f"{mode}: one token {cost['one_token_seconds'] * 1e3:.0f} ms; w tokens: "
            + ", ".join(f"w={w} {r:.2f}x" for w, r in cost["relative"].items()),
            flush=True,
        )
        for batch in args.batch:
            got, secs = timed(model, prompts, batch, args.tokens)
            outs[mode, batch] = got
            row[f"tok_s_batch{batch}"] = sum(map(len, got)) / secs
            print(f"  batch {batch}: {row[f'tok_s_batch{batch}']:.2f} tok/s", flush=True)
        result[mode] = row
    result["speedup"] = {
        f"batch{b}": result["packed"][f"tok_s_batch{b}"] / result["dense"][f"tok_s_batch{b}"] for b in args.batch
    }
    result["identical"] = all(same(outs["dense", b], outs["packed", b]) for b in args.batch)
    print("packed / dense:", result["speedup"], "identical greedy output:", result["identical"])
    save(__file__, f"packed-weights-{args.model}", result)


if __name__ == "__main__":
    main()
