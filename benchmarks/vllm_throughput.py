"""Sampling throughput on vLLM: n samples of the 8-shot GSM8K prompt, 128 tokens each (EOS
off), ponder's vLLM backend against raw `vllm.LLM.generate` on the very same engine, and
against ponder's HF backend, in one process and one sitting. Tokens/s is n * tokens / seconds.

Targets (issue 28): ponder's layer costs at most 5% over raw vLLM at n=16; ponder on vLLM is at
least 2x ponder on HF at n=16.

Wall-time ratios on a shared 2-core machine are noisy (another process's threads take the cores
for seconds at a time), so the layer's cost is also measured apart: the engine's `step` is timed,
and what each run spends outside it (ponder: pricing rows, building completions; raw: vLLM's own
`generate` loop) is compared as a share of raw vLLM's wall time.

    python benchmarks/vllm_throughput.py --model smollm2-135m --n 1 4 16 64
"""

from __future__ import annotations

import argparse
import os
import time

from common import gsm8k_8shot, save
from ponder import Budget, SamplingParams, load_model
from ponder.models import vllm as backend
from ponder.models.loading import checkpoint_folder


class StepClock:
    """Seconds spent inside `engine.step` (wrapped on the instance both runs drive)."""

    def __init__(self, engine):
        self.seconds, step = 0.0, engine.step

        def timed():
            t = time.perf_counter()
            try:
                return step()
            finally:
                self.seconds += time.perf_counter() - t

        engine.step = timed

    def outside(self, run):
        """(wall seconds, seconds outside engine steps) of `run()`."""
        before, t = self.seconds, time.perf_counter()
        run()
        wall = time.perf_counter() - t
        return wall, wall - (self.seconds - before)


def ponder_run(model, prompt, n, tokens, seed):
    t = time.perf_counter()
    out = model.generate([prompt], SamplingParams(n=n, temperature=0.7, max_new_tokens=tokens, seed=seed), Budget())
    dt = time.perf_counter() - t
    assert all(len(c.token_ids) == tokens for c in out[0])
    return dt


def raw_run(llm, ids, n, tokens, seed):
    from vllm import SamplingParams as VSampling

    params = [
        VSampling(temperature=0.7, max_tokens=tokens, ignore_eos=True, seed=seed * 1000 + s, logprobs=0)
        for s in range(n)
    ]  # one request per sample, as ponder sends them
    t = time.perf_counter()
    out = llm.generate([{"prompt_token_ids": ids}] * n, params, use_tqdm=False)
    dt = time.perf_counter() - t
    assert all(len(o.outputs[0].token_ids) == tokens for o in out)
    return dt


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--n", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2, help="raw and ponder vLLM runs per n, alternated")
    ap.add_argument("--hf-max-n", type=int, default=16, help="skip the HF backend above this n (slow)")
    ap.add_argument("--dtype", default="auto", help="the vLLM engine's dtype (HF runs its own default, fp32 on CPU)")
    ap.add_argument("--label", default="", help="appended to the results name (e.g. the thread binding tried)")
    args = ap.parse_args()
    backend.import_vllm()
    from vllm import LLM

    folder = checkpoint_folder(args.model)
    settings = backend.EngineSettings(dtype=args.dtype, max_model_len=4096, kv_cache_gb=2)
    llm = LLM(**settings.engine_args(folder, folder))
    backend._ENGINES[(folder, settings, None, "generate")] = llm.llm_engine  # ponder's backend drives this same engine
    clock = StepClock(llm.llm_engine)
    vl = load_model(args.model, backend="vllm", vllm=vars(settings))
    assert vl.engine is llm.llm_engine, "ponder's backend must drive the raw run's engine"
    hf = load_model(args.model)
    vl.eos_ids, hf.eos_ids = set(), set()  # EOS off: every sample is exactly --tokens long
    prompt = gsm8k_8shot()
    ids = vl.encode(prompt)
    print(f"{args.model}: prompt {len(ids)} tokens, {args.tokens} new tokens, vLLM {settings.dtype}")
    ponder_run(vl, prompt, 2, 4, 99), raw_run(llm, ids, 2, 4, 99), ponder_run(hf, prompt, 1, 4, 99)  # warm-up
    rows = []
    for k, n in enumerate(args.n):
        raw, pv = [], []
        for _ in range(args.repeats):  # alternated, best of each: a shared machine's noise falls on both
            raw.append(clock.outside(lambda: raw_run(llm, ids, n, args.tokens, k)))
            pv.append(clock.outside(lambda: ponder_run(vl, prompt, n, args.tokens, k)))
        (raw, raw_out), (pv, pv_out) = min(raw), min(pv)
        h = ponder_run(hf, prompt, n, args.tokens, k) if n <= args.hf_max_n else None
        hf.prefix_cache.clear()
        row = {
            "n": n,
            "raw_vllm_tok_s": n * args.tokens / raw,
            "ponder_vllm_tok_s": n * args.tokens / pv,
            "ponder_hf_tok_s": n * args.tokens / h if h else None,
            "overhead_vs_raw": pv / raw - 1,
            "outside_steps_raw_s": raw_out,
            "outside_steps_ponder_s": pv_out,
            "layer_cost_vs_raw": (pv_out - raw_out) / raw,
            "vllm_over_hf": h / pv if h else None,
        }
        rows.append(row)
        hf_text = f"ponder HF {row['ponder_hf_tok_s']:6.1f} tok/s ({row['vllm_over_hf']:.2f}x)" if h else "HF skipped"
        print(
            f"n={n:3d}  raw vLLM {row['raw_vllm_tok_s']:6.1f}  ponder vLLM {row['ponder_vllm_tok_s']:6.1f} tok/s "
            f"(wall {row['overhead_vs_raw']:+.1%}, layer {row['layer_cost_vs_raw']:+.1%})  {hf_text}",
            flush=True,
        )
    path = save(
        __file__,
        f"vllm_throughput-{args.model}-{args.dtype}{'-' + args.label if args.label else ''}",
        {
            "model": args.model,
            "vllm_dtype": settings.dtype,
            "hf_dtype": str(hf.network.dtype),
            "prompt_tokens": len(ids),
            "new_tokens": args.tokens,
            "repeats": args.repeats,
            "threads_bind": os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "auto"),
            "rows": rows,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
