"""CPU thread settings on a shared machine: seconds for the same greedy and sampled generations
of SmolLM2-135M under torch's defaults, OMP_WAIT_POLICY=PASSIVE (ponder's default), one thread,
and both; each setting in a fresh process (OpenMP reads them at start-up), all in one sitting,
ratios against torch's defaults. The load average at the start and end is recorded: run it once
on an idle machine and once while other jobs run.

    nice -n 10 python benchmarks/threads.py --model smollm2-135m --tokens 48 --rows 8
"""

from __future__ import annotations

import argparse
import os

from common import child_json, save

SETTINGS = {
    "torch default (spinning OpenMP)": {"OMP_WAIT_POLICY": "ACTIVE"},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "OMP_NUM_THREADS=1": {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "1"},
    "PASSIVE + 1 thread": {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"},
}

CHILD = """
import json, sys, time
import torch
from ponder import Budget, SamplingParams, load_model
model = load_model(sys.argv[1])
prompt = model.chat("Tom has 3 apples and buys 5 more. How many apples does he have? Think step by step.")
tokens, rows = int(sys.argv[2]), int(sys.argv[3])
model.generate([prompt], SamplingParams(temperature=0.0, max_new_tokens=4), Budget())  # warm up
out = {"threads": torch.get_num_threads()}
for name, params in (("greedy", SamplingParams(temperature=0.0, max_new_tokens=tokens)),
                     ("sampled", SamplingParams(n=rows, temperature=0.7, max_new_tokens=tokens, seed=0))):
    model.prefix_cache.clear()
    t0 = time.perf_counter()
    model.generate([prompt], params, Budget())
    out[name + "_seconds"] = time.perf_counter() - t0
print(json.dumps(out))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--label", default="", help="e.g. idle or loaded; part of the results file name")
    args = ap.parse_args()
    load_start = os.getloadavg()
    rows = []
    for name, env in SETTINGS.items():
        child_env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
        out = child_json(CHILD, [args.model, str(args.tokens), str(args.rows)], {**child_env, **env})
        rows.append({"setting": name, "env": env, **out})
        print(rows[-1], flush=True)
    base = rows[0]
    for r in rows:
        r["greedy_speedup"] = base["greedy_seconds"] / r["greedy_seconds"]
        r["sampled_speedup"] = base["sampled_seconds"] / r["sampled_seconds"]
    payload = {"args": vars(args), "loadavg_start": load_start, "loadavg_end": os.getloadavg(), "rows": rows}
    save(__file__, f"threads-{args.model}{'-' + args.label if args.label else ''}", payload)
    for r in rows:
        print(f"{r['setting']:34s} greedy {r['greedy_speedup']:.2f}x  sampled {r['sampled_speedup']:.2f}x")


if __name__ == "__main__":
    main()
