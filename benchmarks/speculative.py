"""Speculative decoding speed: greedy tokens/s of each decoder against plain decoding of the
same target in the same process, the mean tokens each target forward pass emits, and whether
every output equals plain greedy token for token; at batch 1 also transformers' own
`assistant_model=` and `prompt_lookup_num_tokens=` on the same models. Each batch of prompts
goes through every method in turn, so a slow spell of this shared machine hits all alike.

Prompts: the first --prompts GSM8K test questions and HumanEval tasks, in the tasks' own
chat prompts. Decoders are named on the command line as NAME[:key=value,...] — a `decoder`
config group and its overrides (`draft_model:num_tokens=20` is `decoder=draft_model
decoder.num_tokens=20`) — e.g.

    PONDER_DATA=../shared/data python benchmarks/speculative.py --target qwen2.5-coder-1.5b \
        --decoders draft_model:draft=qwen2.5-coder-0.5b ngram early_exit:exit_layer=8 \
        medusa:heads=runs/medusa/qwen2.5-coder-1.5b --batch 1 4 --tokens 96
"""

from __future__ import annotations

import argparse
import time

import torch

from common import save
from ponder import Budget, SamplingParams, load_model
from ponder.tasks import GSM8K, HumanEval


def with_decoder(model, spec: str):
    """`model`'s weights behind the decoder that NAME[:key=value,...] names: the `decoder`
    config group with those overrides, as `ponder run decoder=NAME decoder.key=value` builds it."""
    from ponder.config import compose, instantiate

    name, _, rest = spec.partition(":")
    cfg = compose([f"decoder={name}"] + [f"decoder.{kv}" for kv in filter(None, rest.split(","))])
    return model.with_decoder(instantiate(cfg.decoder, "decoder"))


def task_prompts(model, task: str, limit: int) -> list[str]:
    """The first `limit` questions of "gsm8k" or "humaneval", in the task's chat prompt."""
    return [model.chat(p.question) for p in {"gsm8k": GSM8K, "humaneval": HumanEval}[task](limit=limit)]


def timed(model, prompts, batch, tokens):
    """Greedy outputs of every prompt, `batch` prompts per call, and the seconds it took."""
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=tokens)
    outs, t = [], time.perf_counter()
    draft = getattr(getattr(model.decoder, "proposer", None), "draft", None)
    for s in range(0, len(prompts), batch):
        model.prefix_cache.clear()
        if draft is not None:  # decoders naming one draft share it, and so its prefix cache
            draft.prefix_cache.clear()
        outs += [row[0].token_ids for row in model.generate(prompts[s : s + batch], params, Budget())]
    return outs, time.perf_counter() - t


def hf_assisted(target, prompts, tokens, **how):
    """transformers' generate at batch 1 (its assisted and prompt-lookup modes take one row)."""
    outs, t = [], time.perf_counter()
    for p in prompts:
        ids = torch.tensor([target.encode(p)], device=target.device)
        with torch.inference_mode():
            out = target.network.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                do_sample=False,
                max_new_tokens=tokens,
                pad_token_id=target.tokenizer.eos_token_id,
                **how,
            )
        outs.append(out[0, ids.shape[1] :].tolist())
    return outs, time.perf_counter() - t


def interleaved(runs: dict, prompts, batch: int, tokens: int):
    """Outputs, seconds and decoder stats of every run, timed chunk by chunk in turn (each
    `batch` prompts through plain, then each decoder, then transformers), so that a slow spell
    of this shared machine falls on every method alike. A run is a ponder model, or the keyword
    arguments of a transformers generate baseline (batch 1)."""
    outs = {name: [] for name in runs}
    secs = dict.fromkeys(runs, 0.0)
    before = {name: dict(m.decoder.stats) for name, m in runs.items() if hasattr(getattr(m, "decoder", None), "stats")}
    for s in range(0, len(prompts), batch):
        for name, run in runs.items():
            chunk = prompts[s : s + batch]
            got, t = (
                hf_assisted(runs["plain"], chunk, tokens, **run)
                if isinstance(run, dict)
                else timed(run, chunk, batch, tokens)
            )
            outs[name] += got
            secs[name] += t
    stats = {name: {k: runs[name].decoder.stats[k] - v for k, v in b.items()} for name, b in before.items()}
    return outs, secs, stats


def pass_cost(model, context: int = 256, widths=(1, 2, 3, 5, 9), repeats: int = 5) -> dict:
    """Seconds of one target forward pass over `w` new tokens after a `context`-token cache,
    as a multiple of one token's pass: what verifying a draft of w - 1 tokens costs."""
    from statistics import median
    from transformers import DynamicCache

    net, secs = model.network, {}
    with torch.inference_mode():
        cache = DynamicCache(config=net.config)
        net(input_ids=torch.randint(100, 1000, (1, context)), past_key_values=cache, use_cache=True)
        for w in widths:
            times = []
            for _ in range(repeats + 1):
                t = time.perf_counter()
                net(input_ids=torch.randint(100, 1000, (1, w)), past_key_values=cache, use_cache=True)
                times.append(time.perf_counter() - t)
                cache.crop(-w)
            secs[w] = median(times[1:])
    return {"one_token_seconds": secs[1], "relative": {w: secs[w] / secs[1] for w in widths}}


def same(a, b) -> bool:
    return all(x == y for x, y in zip(a, b))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", default="qwen2.5-coder-1.5b")
    ap.add_argument("--decoders", nargs="+", default=["draft_model:draft=qwen2.5-coder-0.5b", "ngram"])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--tasks", nargs="+", default=["gsm8k", "humaneval"], choices=["gsm8k", "humaneval"])
    ap.add_argument("--prompts", type=int, default=4, help="per task")
    ap.add_argument("--tokens", type=int, default=96)
    ap.add_argument("--hf-draft", default="qwen2.5-coder-0.5b", help="assistant_model for transformers' baseline")
    ap.add_argument("--skip-hf", action="store_true", help="no transformers baselines")
    ap.add_argument("--out", help="results name (default speculative-<target>)")
    ap.add_argument(
        "--packed-weights",
        default="auto",
        choices=["auto", "off"],
        help="model.packed_weights of the target and its draft (docs/benchmarks.md: packed weights)",
    )
    args = ap.parse_args()
    out_name = args.out or f"speculative-{args.target}"

    plain = load_model(args.target, packed_weights=args.packed_weights)
    prompts = {t: task_prompts(plain, t, args.prompts) for t in args.tasks}
    timed(plain, next(iter(prompts.values()))[:1], 1, 4)  # warm-up
    cost = pass_cost(plain)
    print(
        "cost of one forward pass over w tokens, relative to one token:",
        ", ".join(f"w={w}: {r:.2f}x" for w, r in cost["relative"].items()),
        flush=True,
    )
    # one model (and one loaded draft) per decoder, sharing the target's weights
    fast = {spec: with_decoder(plain, spec) for spec in args.decoders}
    # transformers' assisted generation gets each draft network ponder loaded under --hf-draft
    # (bf16 and fp32 ones apart), else its own fp32 load of it
    assistants = {}
    for m in fast.values():
        draft = getattr(getattr(m.decoder, "proposer", None), "draft", None)
        if draft is not None and draft.name == args.hf_draft:
            assistants[f"hf_assisted:{str(draft.network.dtype).split('.')[-1]}"] = draft.network
    if args.hf_draft and not args.skip_hf and not assistants:
        assistants["hf_assisted"] = load_model(args.hf_draft, packed_weights=args.packed_weights).network
    rows = []
    for task, ps in prompts.items():
        for batch in args.batch:
            runs = {"plain": plain, **fast}
            if batch == 1 and not args.skip_hf:
                runs.update({label: {"assistant_model": net} for label, net in assistants.items()})
                runs["hf_prompt_lookup"] = {"prompt_lookup_num_tokens": 8}
            outs, secs, stats = interleaved(runs, ps, batch, args.tokens)
            base, base_s = outs["plain"], secs["plain"]
            n_tokens = sum(map(len, base))
            row = {"task": task, "batch": batch, "plain_tok_s": n_tokens / base_s, "decoders": {}}
            print(f"{task} batch {batch}: plain {row['plain_tok_s']:.2f} tok/s", flush=True)
            for name in runs:
                if name == "plain":
                    continue
                result = {
                    "tok_s": n_tokens / secs[name],
                    "speedup": base_s / secs[name],
                    "identical_to_plain": same(outs[name], base),
                }
                if name in fast:
                    result["tokens_per_target_pass"] = stats[name]["emitted"] / max(stats[name]["row_steps"], 1)
                    row["decoders"][name] = result
                else:
                    row[name] = result
                per_pass = f", {result['tokens_per_target_pass']:.2f} tokens/pass" if name in fast else ""
                print(
                    f"  {name}: {result['tok_s']:.2f} tok/s, {result['speedup']:.2f}x plain{per_pass}, "
                    f"identical={result['identical_to_plain']}",
                    flush=True,
                )
            rows.append(row)  # saved as it goes: a run stopped part-way keeps its finished rows
            path = save(
                __file__,
                out_name,
                {
                    "target": args.target,
                    "tokens": args.tokens,
                    "prompts_per_task": args.prompts,
                    "packed_weights": args.packed_weights,
                    "pass_cost": cost,
                    "rows": rows,
                },
            )
            plot(rows, path.with_suffix(".png"), args.target)
    print(f"wrote {path}")


def plot(rows, path, target):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = sorted({k for r in rows for k in r["decoders"]} | {k for r in rows for k in r if k.startswith("hf_")})
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(rows)
    for i, r in enumerate(rows):
        vals = [(r["decoders"].get(k) or r.get(k) or {}).get("speedup", 0) for k in labels]
        ax.bar([j + i * width for j in range(len(labels))], vals, width, label=f"{r['task']} batch {r['batch']}")
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(labels))], labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("speed-up over plain greedy")
    ax.set_title(f"speculative decoding, target {target}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
