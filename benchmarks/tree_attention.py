"""GPU benchmark of ponder's Triton tree-attention kernel against SDPA with a dense mask and,
when installed, FlashInfer's single-request prefill with a custom mask: Qwen2.5-Coder-1.5B's
attention shape (12 query heads, 2 KV heads, head dim 128), bf16, one row, prefix 512-8192,
random trees of 16-256 nodes. Each configuration is first checked against the reference.
Each is timed twice: called from Python as the decoder calls it (launch overhead included),
and replayed from a CUDA graph (the GPU's own time).

`--parts sweep` times the kernel's block sizes and warps on a few shapes; `--parts model`
times one whole tree verification pass of a randomly initialised model of
Qwen2.5-Coder-1.5B's shape (28 layers, 1 to many rows) with the kernel against the model's
own SDPA attention; `--parts host` times the host's side of each call.

    python benchmarks/tree_attention.py [--parts kernels sweep model host]     (needs a CUDA GPU)
"""

from __future__ import annotations

import argparse
import itertools
import sys

import torch

from common import save


def random_parents(size: int, g: torch.Generator) -> list[int]:
    """A random tree: each node's parent is one of the 8 nodes before it."""
    return [int(torch.randint(max(0, i - 8), i + 1, (), generator=g)) for i in range(size - 1)]


def bench(fn) -> dict:
    """Median milliseconds called eagerly and replayed from a CUDA graph (None if it cannot be captured)."""
    from triton.testing import do_bench, do_bench_cudagraph

    out = {"ms": do_bench(fn, return_mode="median")}
    try:
        out["graph_ms"] = do_bench_cudagraph(fn, return_mode="median")
    except Exception as e:  # noqa: BLE001 - some libraries allocate or sync inside; say so
        print(f"  no CUDA graph: {type(e).__name__}: {str(e)[:120]}", flush=True)
        out["graph_ms"] = None
        torch.cuda.synchronize()
    return out


def shapes(S, T, H, KVH, D, g):
    from ponder.speculative.tree import ancestors

    q = torch.randn(1, H, T, D, generator=g).to("cuda", torch.bfloat16)
    k, v = (torch.randn(1, KVH, S + T, D, generator=g).to("cuda", torch.bfloat16) for _ in range(2))
    pv = torch.ones(1, S, dtype=torch.bool, device="cuda")
    tm = ancestors(random_parents(T, g), T)[None].cuda()
    return q, k, v, pv, tm


def kernels(args, g) -> tuple[list, str | None]:
    from ponder.speculative.kernels.reference import reference_tree_attention
    from ponder.speculative.kernels.triton_tree import triton_tree_attention

    try:
        import flashinfer
    except ImportError:
        flashinfer = None
    flashinfer_note = getattr(flashinfer, "__version__", "not installed")
    rows = []
    for S, T in itertools.product(args.prefix, args.tree):
        q, k, v, pv, tm = shapes(S, T, args.heads, args.kv_heads, args.head_dim, g)
        dense = torch.cat([pv[:, None].expand(1, T, S), tm], -1)[:, None]  # [1, 1, T, S+T]
        want = reference_tree_attention(q, k, v, pv, tm)
        row = {
            "prefix": S,
            "tree": T,
            "max_abs_err": float((triton_tree_attention(q, k, v, pv, tm).float() - want.float()).abs().max()),
        }
        for name, fn in [
            ("triton", lambda: triton_tree_attention(q, k, v, pv, tm)),
            (
                "sdpa",
                lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=dense, enable_gqa=True),
            ),
        ]:
            row.update({f"{name}_{key}": val for key, val in bench(fn).items()})
        if flashinfer is not None:
            qf, kf, vf = (x[0].transpose(0, 1).contiguous() for x in (q, k, v))
            mask = dense[0, 0].contiguous()
            try:
                fi = flashinfer.single_prefill_with_kv_cache(qf, kf, vf, custom_mask=mask)
                row["flashinfer_max_abs_err"] = float((fi.transpose(0, 1).float() - want[0].float()).abs().max())
                row.update(
                    {
                        f"flashinfer_{key}": val
                        for key, val in bench(
                            lambda: flashinfer.single_prefill_with_kv_cache(qf, kf, vf, custom_mask=mask)
                        ).items()
                    }
                )
            except Exception as e:  # noqa: BLE001 - a FlashInfer that cannot build its kernel here: go on without it
                print(f"FlashInfer failed, left out: {type(e).__name__}: {e}", flush=True)
                flashinfer, flashinfer_note = None, f"failed: {type(e).__name__}: {e}"
        rows.append(row)
        print(row, flush=True)
    return rows, flashinfer_note


def sweep(args, g) -> list:
    from triton.testing import do_bench_cudagraph

    from ponder.speculative.kernels.triton_tree import triton_tree_attention

    rows = []
    for S, T in [(1024, 16), (8192, 16), (2048, 64), (8192, 256)]:
        q, k, v, pv, tm = shapes(S, T, args.heads, args.kv_heads, args.head_dim, g)
        for bm, bn, warps, split in itertools.product([32, 64, 128], [32, 64, 128], [4, 8], [None, 1]):
            fn = lambda: triton_tree_attention(
                q,
                k,
                v,
                pv,
                tm,
                block_m=bm,
                block_n=bn,
                num_warps=warps,  # noqa: E731
                splits=split,
            )
            try:
                fn()
                ms = do_bench_cudagraph(fn, return_mode="median")
            except Exception as e:  # noqa: BLE001 - a config that does not fit (shared memory): skip it
                print(f"  {S=} {T=} {bm=} {bn=} {warps=}: {type(e).__name__}", flush=True)
                continue
            rows.append(
                {
                    "prefix": S,
                    "tree": T,
                    "block_m": bm,
                    "block_n": bn,
                    "num_warps": warps,
                    "splits": "auto" if split is None else split,
                    "graph_ms": ms,
                }
            )
        best = min((r for r in rows if r["prefix"] == S and r["tree"] == T), key=lambda r: r["graph_ms"])
        print("best", best, flush=True)
    return rows


def host(args, g) -> list:
    """Microseconds of host time per call (the time to issue the work, not to run it), from
    Python as a transformers layer calls each attention implementation."""
    import time

    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    from ponder.speculative.kernels import register, split_mask
    from ponder.speculative.kernels.triton_tree import triton_tree_attention

    rows = []
    for B, S, T in [(1, 2048, 16), (8, 8192, 16)]:
        q, k, v, pv, tm = shapes(S, T, args.heads, args.kv_heads, args.head_dim, g)
        q, k, v, pv, tm = (
            q.expand(B, -1, -1, -1),
            k.expand(B, -1, -1, -1),
            v.expand(B, -1, -1, -1),
            pv.expand(B, -1),
            tm.expand(B, -1, -1),
        )
        allowed = torch.cat([pv[:, None].expand(B, T, S), tm], -1)[:, None]
        bias = torch.zeros(allowed.shape, dtype=q.dtype, device="cuda").masked_fill(~allowed, -1e30)
        module = torch.nn.Module()
        module.num_key_value_groups, module.is_causal, module.training = args.heads // args.kv_heads, False, False
        register()
        ours = ALL_ATTENTION_FUNCTIONS["ponder_tree"]  # as a model layer calls it
        calls = {
            "kernel": lambda: triton_tree_attention(q, k, v, pv, tm),
            "kernel_one_slice": lambda: triton_tree_attention(q, k, v, pv, tm, splits=1),
            "split_mask": lambda: split_mask(bias, B, T, S + T, "cuda"),
            "empty": lambda: torch.empty(B, T, args.heads, args.head_dim, dtype=q.dtype, device="cuda"),
            "ponder_tree_layer": lambda: ours(module, q, k, v, bias),
            "sdpa_layer": lambda: sdpa_attention_forward(module, q, k, v, bias),
        }
        row = {"rows": B, "prefix": S, "tree": T}
        for name, fn in calls.items():
            fn()
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(200):
                fn()
            row[f"{name}_us"] = (time.perf_counter() - t0) / 200 * 1e6
            torch.cuda.synchronize()
        rows.append(row)
        print(row, flush=True)
    return rows


@torch.inference_mode()
def model_pass(args, g) -> list:
    """One verification pass (28 layers) of a random Qwen2.5-Coder-1.5B-shaped model over a
    prefilled cache, with each attention implementation."""
    from transformers import Qwen2Config, Qwen2ForCausalLM
    from triton.testing import do_bench

    from ponder.models.kv_cache import preallocated_cache
    from ponder.speculative.decoder import KVRows, pick_attention

    cfg = Qwen2Config(
        vocab_size=151936,
        hidden_size=1536,
        intermediate_size=8960,
        num_hidden_layers=28,
        num_attention_heads=12,
        num_key_value_heads=2,
        tie_word_embeddings=True,
        max_position_embeddings=32768,
        attn_implementation="sdpa",
    )
    torch.manual_seed(0)
    with torch.device("cuda"):
        net = Qwen2ForCausalLM(cfg).to(torch.bfloat16).eval()
    rows = []
    for B, S, T in itertools.product(args.model_rows, args.model_prefix, args.model_tree):
        prompt = torch.randint(0, cfg.vocab_size, (B, S), generator=g).cuda()
        cache = preallocated_cache(cfg, T)
        net.model(input_ids=prompt, past_key_values=cache, use_cache=True)  # no [B, S, vocab] logits
        parents = [random_parents(T, g) for _ in range(B)]
        blocks = torch.randint(0, cfg.vocab_size, (B, T), generator=g).tolist()
        row = {"rows": B, "prefix": S, "tree": T}
        logits = {}
        for name in ("model", "triton"):
            kv = KVRows(
                net,
                cache,
                torch.ones(B, S, dtype=torch.long, device="cuda"),
                [S] * B,
                attention=pick_attention(name, "cuda"),
            )

            def verify():
                out = kv.forward(blocks, parents)
                kv.crop(S)
                return out

            logits[name] = verify()
            row[f"{name}_ms"] = do_bench(verify, return_mode="median")
        row["max_abs_logit_diff"] = float((logits["model"] - logits["triton"]).abs().max())
        rows.append(row)
        print(row, flush=True)
        del cache, prompt
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prefix", type=int, nargs="+", default=[512, 1024, 2048, 4096, 8192])
    ap.add_argument("--tree", type=int, nargs="+", default=[16, 64, 128, 256])
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--parts", nargs="+", choices=["kernels", "sweep", "model", "host"], default=["kernels"])
    ap.add_argument("--model-rows", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--model-prefix", type=int, nargs="+", default=[2048, 8192])
    ap.add_argument("--model-tree", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--out", default="tree-attention-gpu")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("tree_attention.py needs a CUDA GPU")
    g = torch.Generator().manual_seed(0)
    result = {
        "device": torch.cuda.get_device_name(),
        "heads": args.heads,
        "kv_heads": args.kv_heads,
        "head_dim": args.head_dim,
        "dtype": "bf16",
    }
    for part in args.parts:  # saved after each part, so a run cut short keeps what it finished
        if part == "kernels":
            result["rows"], result["flashinfer"] = kernels(args, g)
        else:
            result[part] = {"sweep": sweep, "model": model_pass, "host": host}[part](args, g)
        path = save(__file__, args.out, result)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
