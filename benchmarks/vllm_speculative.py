"""`decoder=ngram` on vLLM (vLLM's own n-gram speculation, priced per row by ponder) against plain
decoding on vLLM, same model, same process, one sitting: greedy tokens/s, tokens emitted per
engine step (generated tokens / forward passes), drafts offered, and whether every output equals
plain greedy token for token. Each batch of prompts goes through plain and n-gram in turn,
`--repeats` times, so a slow spell of the machine hits both. Where a sample differs, the first
token where it does is reported with both runs' log-probabilities of their own tokens there (the
contexts are still identical, so two nearly equal values mean a near tie that arithmetic decided:
a (d + 1)-token verification pass does not round like a one-token step, most of all in bf16).

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
    return [(c.token_ids, c.logprobs) for row in out for c in row], time.perf_counter() - t, budget.usage


def divergences(samples, plain) -> list[dict]:
    """For each sample that differs from plain greedy: where first, and each run's log-probability
    of its own token there."""
    found = []
    for (ids, lps), (ref, ref_lps) in zip(samples, plain):
        k = next((j for j, (a, b) in enumerate(zip(ids, ref)) if a != b), None)
        if k is None and len(ids) != len(ref):  # one ended (EOS) where the other went on
            found.append({"token": min(len(ids), len(ref)), "logprob": None, "plain_logprob": None})
        elif k is not None:
            found.append({"token": k, "logprob": lps[k], "plain_logprob": ref_lps[k]})
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--num-tokens", type=int, nargs="+", default=[4, 8], help="n-gram draft lengths to try")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--dtype", default="auto", help="model.vllm.dtype: auto (bf16), fp32, ...")
    args = ap.parse_args()
    engine = {"dtype": args.dtype}
    models = {"plain": load_model(args.model, backend="vllm", vllm=engine)}
    for k in args.num_tokens:
        models[f"ngram{k}"] = load_model(args.model, backend="vllm", decoder=ngram(num_tokens=k), vllm=engine)
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
                        outputs.setdefault(name, []).extend(ids)
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
                        "equals_plain_greedy": [i for i, _ in outputs[name]] == [i for i, _ in outputs["plain"]],
                        "differing": divergences(outputs[name], outputs["plain"]),
                    }
                )
                r = rows[-1]
                print(
                    f"{task:9s} batch {batch}  {name:7s} {r['tokens_per_second']:6.1f} tok/s "
                    f"({r['speedup']:.2f}x)  {r['tokens_per_step']:.2f} tokens/step  "
                    f"equal to plain: {r['equals_plain_greedy']}  "
                    + " ".join(
                        f"@{d['token']}:ended"
                        if d["logprob"] is None
                        else f"@{d['token']}:{d['logprob']:.3f}/{d['plain_logprob']:.3f}"
                        for d in r["differing"]
                    ),
                    flush=True,
                )
    tag = "" if args.dtype == "auto" else f"-{args.dtype}"
    path = save(
        __file__,
        f"vllm_speculative-{args.model}{tag}",
        {"model": args.model, "dtype": args.dtype, "tokens": args.tokens, "rows": rows},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
