"""Tree attention in plain PyTorch: the reference the Triton kernel is tested against."""

from __future__ import annotations

import torch


def reference_tree_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    prefix_valid: torch.Tensor,
    tree_mask: torch.Tensor,
    scale: float | None = None,
) -> torch.Tensor:
    """Attention of a token tree's queries over a row's cached prefix plus the tree itself.

    q [B, H, T, D]; k, v [B, KVH, S + T, D] (the prefix's S slots, then the tree's T nodes;
    H a multiple of KVH); prefix_valid [B, S] bool (False for padding and dropped slots);
    tree_mask [B, T, T] bool (node i sees node j). Returns [B, H, T, D] in q's dtype.
    """
    B, H, T, D = q.shape
    S = k.shape[2] - T
    groups = H // k.shape[1]
    k, v = k.repeat_interleave(groups, 1).float(), v.repeat_interleave(groups, 1).float()
    scores = q.float() @ k.transpose(-1, -2) * (scale if scale is not None else D**-0.5)
    allowed = torch.cat([prefix_valid[:, None, :].expand(B, T, S), tree_mask], -1).bool()
    scores = scores.masked_fill(~allowed[:, None], float("-inf"))
    return (torch.softmax(scores, -1) @ v).to(q.dtype)
