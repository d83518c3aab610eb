"""Tree attention: `reference_tree_attention` (PyTorch) and `triton_tree_attention` (Triton),
registered as transformers attention implementations "ponder_tree" (Triton) and
"ponder_tree_reference", which the speculative decoder switches to while it verifies a tree.

Inside a transformers model the kernel receives the dense additive mask the decoder built;
it reads the row's prefix validity from the root's row of it and the tree mask from its last
T columns, so the kernel itself only ever loads a [S] vector and a [T, T] matrix per row.
"""

from __future__ import annotations

import torch

from ponder.speculative.kernels.reference import reference_tree_attention


def split_mask(attention_mask: torch.Tensor | None, batch: int, queries: int, keys: int, device):
    """(prefix_valid [B, S], tree_mask [B, T, T]) from a 4D mask (additive float or bool)."""
    prefix = keys - queries
    if attention_mask is None:  # plain causal attention (a prefill)
        return (
            torch.ones(batch, prefix, dtype=torch.bool, device=device),
            torch.ones(queries, queries, dtype=torch.bool, device=device).tril().expand(batch, -1, -1),
        )
    m = attention_mask[:, 0]
    allowed = m if m.dtype == torch.bool else m > torch.finfo(m.dtype).min / 2
    allowed = allowed.expand(batch, queries, keys)
    return allowed[:, 0, :prefix], allowed[:, :, prefix:]


def _attention(impl):
    """A transformers attention implementation around `impl(q, k, v, prefix_valid, tree, scale)`,
    which returns [B, T, H, D] (the layout transformers wants back)."""
    last = [None, None]  # (mask, its split): every layer of one pass gets the same mask tensor

    def forward(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
        B, H, T, D = query.shape
        if attention_mask is None or last[0] is not attention_mask:
            last[:] = attention_mask, split_mask(attention_mask, B, T, key.shape[2], query.device)
        return impl(query, key, value, *last[1], scaling), None

    return forward


def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def register() -> None:
    """Make "ponder_tree_reference" (and, with triton installed, "ponder_tree") attention
    implementations transformers models can switch to."""
    from transformers import AttentionInterface

    AttentionInterface.register("ponder_tree_reference", _attention(_reference))
    if triton_available():
        AttentionInterface.register("ponder_tree", _attention(_triton))


def _reference(q, k, v, prefix_valid, tree, scale):
    return reference_tree_attention(q, k, v, prefix_valid, tree, scale).transpose(1, 2).contiguous()


def _triton(q, k, v, prefix_valid, tree, scale):
    # imported on first use: triton reads TRITON_INTERPRET when the kernel is defined
    from ponder.speculative.kernels.triton_tree import triton_tree_attention

    B, H, T, D = q.shape
    out = torch.empty(B, T, H, D, dtype=q.dtype, device=q.device)
    triton_tree_attention(q, k, v, prefix_valid, tree, scale, out=out.transpose(1, 2))  # written in place
    return out
