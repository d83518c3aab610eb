"""`decoder=ngram` on vLLM (vLLM's own n-gram speculation, priced per row by ponder) against plain
decoding on vLLM, same model, same process, one sitting: greedy tokens/s, tokens emitted per
engine step (generated tokens / forward passes), drafts offered, and whether every output equals
plain greedy token for token. Each batch of prompts goes through plain and n-gram in turn,
`--repeats` times, so a slow spell of the machine hits both.

Prompts: the first --prompts GSM8K test questions and HumanEval tasks in the tasks' chat prompts.

    PONDER_DATA=../shared/data python benchmarks/vllm_speculative.py --model smollm2-135m
"""

from __future__ import annotations

import argparse
import time

from common import save
from ponder import Budget, SamplingParams, load_model
from ponder.speculative import ngram
from speculative import task_prompts


def run(model, prompts, tokens):
    budget, t = Budget(), time.perf_counter()
    out = model.generate(prompts, SamplingParams(max_new_tokens=tokens, temperature=0.0), budget)
    return [c.token_ids for row in out for c in row], time.perf_counter() - t, budget.usage


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--num-tokens", type=int, nargs="+", default=[4, 8], help="n-gram draft lengths to try")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    models = {"plain": load_model(args.model, backend="vllm")}
    for k in args.num_tokens:
        models[f"ngram{k}"] = load_model(args.model, backend="vllm", decoder=ngram(num_tokens=k))
    rows = []
    for task in ("gsm8k", "humaneval"):
        prompts = task_prompts(models["plain"], task, args.prompts)
        for batch in args.batch:
            totals = {name: [0.0, 0, 0, 0] for name in models}  # seconds, tokens, passes, drafts
            outputs = {}
            for _ in range(args.repeats):
                for i in range(0, len(prompts), batch):
                    for name, model in models.items():
                        ids, dt, usage = run(model, prompts[i : i + batch], args.tokens)
                        outputs.setdefault(name, []).append(ids)
                        t = totals[name]
                        t[0] += dt
                        t[1] += usage.generated_tokens
                        t[2] += usage.forward_passes
                        t[3] += usage.draft_tokens
            base = totals["plain"][1] / totals["plain"][0]
            for name, (secs, toks, passes, drafts) in totals.items():
                rows.append(
                    {
                        "task": task,
                        "batch": batch,
                        "decoder": name,
                        "tokens_per_second": toks / secs,
                        "speedup": toks / secs / base,
                        "tokens_per_step": toks / passes,
                        "drafts_per_token": drafts / toks,
                        "equals_plain_greedy": outputs[name] == outputs["plain"],
                    }
                )
                r = rows[-1]
                print(
                    f"{task:9s} batch {batch}  {name:7s} {r['tokens_per_second']:6.1f} tok/s "
                    f"({r['speedup']:.2f}x)  {r['tokens_per_step']:.2f} tokens/step  "
                    f"equal to plain: {r['equals_plain_greedy']}",
                    flush=True,
                )
    path = save(__file__, f"vllm_speculative-{args.model}", {"model": args.model, "tokens": args.tokens, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
