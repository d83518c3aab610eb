"""GPU benchmark of ponder's Triton tree-attention kernel against SDPA with a dense mask and,
when installed, FlashInfer's single-request prefill with a custom mask: Qwen2.5-Coder-1.5B's
attention shape (12 query heads, 2 KV heads, head dim 128), bf16, one row, prefix 512-8192,
random trees of 16-256 nodes. Each configuration is first checked against the reference.

    python benchmarks/tree_attention.py            (needs a CUDA GPU)
"""
from __future__ import annotations

import argparse
import sys

import torch

from common import save


def random_tree(size: int, g: torch.Generator) -> torch.Tensor:
    from ponder.speculative.tree import ancestors
    parents = [int(torch.randint(max(0, i - 8), i + 1, (), generator=g)) for i in range(size - 1)]
    return ancestors(parents, size)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prefix", type=int, nargs="+", default=[512, 1024, 2048, 4096, 8192])
    ap.add_argument("--tree", type=int, nargs="+", default=[16, 64, 128, 256])
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=128)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("tree_attention.py needs a CUDA GPU")
    from triton.testing import do_bench

    from ponder.speculative.kernels.reference import reference_tree_attention
    from ponder.speculative.kernels.triton_tree import triton_tree_attention
    try:
        import flashinfer
    except ImportError:
        flashinfer = None
    H, KVH, D, dev, dt = args.heads, args.kv_heads, args.head_dim, "cuda", torch.bfloat16
    g = torch.Generator().manual_seed(0)
    rows = []
    for S in args.prefix:
        for T in args.tree:
            q = torch.randn(1, H, T, D, generator=g).to(dev, dt)
            k, v = (torch.randn(1, KVH, S + T, D, generator=g).to(dev, dt) for _ in range(2))
            pv = torch.ones(1, S, dtype=torch.bool, device=dev)
            tm = random_tree(T, g)[None].to(dev)
            dense = torch.cat([pv[:, None].expand(1, T, S), tm], -1)[:, None]  # [1, 1, T, S+T]
            want = reference_tree_attention(q, k, v, pv, tm)
            got = triton_tree_attention(q, k, v, pv, tm)
            row = {"prefix": S, "tree": T, "max_abs_err": float((got.float() - want.float()).abs().max())}
            row["triton_ms"] = do_bench(lambda: triton_tree_attention(q, k, v, pv, tm))
            row["sdpa_ms"] = do_bench(lambda: torch.nn.functional.scaled_dot_product_attention(
                q, k, v, attn_mask=dense, enable_gqa=True))
            if flashinfer is not None:
                qf, kf, vf = q[0].transpose(0, 1).contiguous(), k[0].transpose(0, 1).contiguous(), \
                    v[0].transpose(0, 1).contiguous()
                mask = dense[0, 0].contiguous()
                row["flashinfer_ms"] = do_bench(lambda: flashinfer.single_prefill_with_kv_cache(
                    qf, kf, vf, custom_mask=mask))
            rows.append(row)
            print(row, flush=True)
    path = save("tree-attention-gpu", {"device": torch.cuda.get_device_name(), "heads": H, "kv_heads": KVH,
                                       "head_dim": D, "dtype": "bf16", "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
