"""Sampling throughput: n samples of one 8-shot GSM8K prompt, ponder's HF backend (one shared
prefill, expanded KV cache) against transformers' `generate(num_return_sequences=n)` on the
same model in the same process. Both produce exactly --tokens tokens per sample (EOS off), so
tokens/s is n * tokens / seconds.

    python benchmarks/throughput.py --model smollm2-135m --n 1 4 16
"""

from __future__ import annotations

import argparse
import time

import torch

from common import gsm8k_8shot, save
from ponder import Budget, SamplingParams, load_model


def ponder_run(model, prompt, n, tokens):
    model.prefix_cache.clear()  # no help from earlier repeats
    t = time.perf_counter()
    out = model.generate([prompt], SamplingParams(n=n, temperature=0.7, max_new_tokens=tokens, seed=0), Budget())
    dt = time.perf_counter() - t
    assert all(len(c.token_ids) == tokens for c in out[0])
    return dt


def hf_run(model, prompt, n, tokens):
    ids = torch.tensor([model.encode(prompt)])
    t = time.perf_counter()
    with torch.inference_mode():
        out = model.network.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            do_sample=True,
            temperature=0.7,
            top_k=0,
            num_return_sequences=n,
            max_new_tokens=tokens,
            min_new_tokens=tokens,
            pad_token_id=model.tokenizer.eos_token_id,
        )
    dt = time.perf_counter() - t
    assert out.shape == (n, ids.shape[1] + tokens)
    return dt


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--n", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--packed-weights", default="auto", choices=["auto", "off"], help="model.packed_weights")
    args = ap.parse_args()
    model = load_model(args.model, dtype=args.dtype, packed_weights=args.packed_weights)
    model.eos_ids = set()
    prompt = gsm8k_8shot()
    print(f"{args.model} ({model.network.dtype}), prompt {len(model.encode(prompt))} tokens, {args.tokens} new tokens")
    ponder_run(model, prompt, 1, 4)  # warm-up
    rows = []
    for n in args.n:
        p, h = ponder_run(model, prompt, n, args.tokens), hf_run(model, prompt, n, args.tokens)
        row = {"n": n, "ponder_tok_s": n * args.tokens / p, "hf_tok_s": n * args.tokens / h, "ratio": h / p}
        rows.append(row)
        print(
            f"n={n:3d}  ponder {row['ponder_tok_s']:7.1f} tok/s   transformers {row['hf_tok_s']:7.1f} tok/s   "
            f"ratio {row['ratio']:.2f}x",
            flush=True,
        )
    packed = "-packed" if args.packed_weights == "auto" else ""  # the dense results keep their old name
    path = save(
        __file__,
        f"throughput-{args.model}-{args.dtype}{packed}",
        {
            "model": args.model,
            "dtype": str(model.network.dtype),
            "packed_weights": args.packed_weights,
            "prompt_tokens": len(model.encode(prompt)),
            "new_tokens": args.tokens,
            "rows": rows,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
