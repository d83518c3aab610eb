"""Which dtype is faster on this CPU: prefill of the 8-shot GSM8K prompt, and decode steps at
batch 1, 8 and 16 with that prompt as context, and one token's forward pass after a short
(256-token) context, bf16 against fp32, in one process. Weights are
packed (`model.packed_weights=auto`): fp32 always, bf16 where the CPU runs bf16 natively, as
the results file records (`bf16_packed`).

    python benchmarks/dtype.py --model smollm2-135m
"""

from __future__ import annotations

import argparse
import time

from common import gsm8k_8shot, save
from speculative import pass_cost
from ponder import Budget, SamplingParams, load_model
from ponder.models.cpu_linear import bf16_available


def measure(model, prompt, n, steps=16, repeats=2):
    best_prefill, best_step = float("inf"), float("inf")
    for _ in range(repeats):
        model.prefix_cache.clear()
        t = time.perf_counter()
        model.prefill(model.encode(prompt), Budget())
        prefill = time.perf_counter() - t
        t = time.perf_counter()  # the prefix is cached now: this is decode only
        model.generate([prompt], SamplingParams(n=n, max_new_tokens=steps + 1, seed=0), Budget())
        best_prefill, best_step = min(best_prefill, prefill), min(best_step, (time.perf_counter() - t) / steps)
    return best_prefill, best_step


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    args = ap.parse_args()
    prompt, rows = gsm8k_8shot(), []
    for dtype in ("bf16", "fp32"):
        model = load_model(args.model, dtype=dtype)
        model.eos_ids = set()
        short = pass_cost(model, widths=(1,))["one_token_seconds"]
        rows.append({"dtype": dtype, "one_token_after_256_s": short})
        print(f"{dtype}  one token after 256: {short * 1000:.0f} ms", flush=True)
        for n in (1, 8, 16):
            prefill, step = measure(model, prompt, n)
            rows.append({"dtype": dtype, "n": n, "prefill_s": prefill, "decode_tok_s": n / step})
            print(f"{dtype}  n={n:2d}  prefill {prefill:6.2f} s   decode {n / step:6.1f} tok/s", flush=True)
    save(
        __file__,
        f"dtype-{args.model}",
        {
            "model": args.model,
            "prompt_tokens": len(model.encode(prompt)),
            "bf16_packed": bf16_available(),
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
