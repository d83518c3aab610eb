"""vLLM's CPU thread binding on this machine: ponder on vLLM sampling n rows of the 8-shot GSM8K
prompt (EOS off) under `VLLM_CPU_OMP_THREADS_BIND=auto` (vLLM's default: on 2 cores, one compute
thread) and under binding every core (`0-<last>`), each in a fresh process (vLLM binds at start),
idle and then while `--load` busy processes (other jobs sharing the cores) run, in one sitting,
one process per setting in a fixed order. Tokens/s, best of `--repeats` in that process; the load
average is recorded beside each.

    python benchmarks/vllm_threads.py --model smollm2-135m --n 16 --load 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from common import child_json, save

CHILD = """
import json, sys, time
from common import gsm8k_8shot
from ponder import Budget, SamplingParams, load_model
model = load_model(sys.argv[1], backend="vllm")
model.eos_ids = set()  # EOS off: every sample has exactly the tokens asked for
prompt, n, tokens, repeats = gsm8k_8shot(), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
model.generate([prompt], SamplingParams(n=2, temperature=0.7, max_new_tokens=4, seed=9), Budget())  # warm-up
best = float("inf")
for r in range(repeats):
    t = time.perf_counter()
    model.generate([prompt], SamplingParams(n=n, temperature=0.7, max_new_tokens=tokens, seed=r), Budget())
    best = min(best, time.perf_counter() - t)
print(json.dumps({"tok_s": n * tokens / best}))
"""

BUSY = "while True: pass"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--load", type=int, default=2, help="busy processes for the loaded runs")
    args = ap.parse_args()
    every = f"0-{os.cpu_count() - 1}"
    here = os.path.dirname(os.path.abspath(__file__))
    rows = []
    for loaded in (False, True):
        busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(args.load if loaded else 0)]
        try:
            for bind in ("auto", every):
                env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
                env |= {"VLLM_CPU_OMP_THREADS_BIND": bind, "PYTHONPATH": here}
                out = child_json(CHILD, [args.model, str(args.n), str(args.tokens), str(args.repeats)], env)
                rows.append({"bind": bind, "loaded": loaded, "loadavg": os.getloadavg()[0], **out})
                print(rows[-1], flush=True)
        finally:
            for p in busy:
                p.kill()
                p.wait()
    for loaded in (False, True):
        by = {r["bind"]: r["tok_s"] for r in rows if r["loaded"] == loaded}
        print(f"{'loaded' if loaded else 'idle':6s}: bind {every} at {by[every] / by['auto']:.2f}x of auto")
    save(__file__, f"vllm_threads-{args.model}-n{args.n}", {"args": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
