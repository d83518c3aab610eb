"""The tree-attention kernel in Triton.

One program computes a block of BLOCK_T tree queries of one (row, head): it streams the row's
prefix keys and values once per block of BLOCK_N slots (shared by every query in the block,
masked by the row's prefix validity), then the tree's own nodes under the tree mask, keeping
an online softmax (running max, sum and output) in fp32. Grouped-query heads read their
shared KV head. fp32 inputs are multiplied in full fp32 (no TF32). Runs on CPU under
TRITON_INTERPRET=1 (fp32/fp16: the interpreter mishandles bf16 dots).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

NEG = -1.0e30  # finite: a block masked for a query contributes exp(NEG - max) = 0 once it sees a key


@triton.jit
def _online_update(s, vblk, m_i, l_i, acc, PRECISION: tl.constexpr):
    m_new = tl.maximum(m_i, tl.max(s, 1))
    alpha = tl.exp(m_i - m_new)
    p = tl.exp(s - m_new[:, None])
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = acc * alpha[:, None] + tl.dot(p.to(vblk.dtype), vblk, input_precision=PRECISION)
    return m_new, l_i, acc


@triton.jit
def _tree_attention_kernel(Q, K, V, O, PV, TM, scale,
                           sqb, sqh, sqt, skb, skh, skn, svb, svh, svn, sob, soh, sot, spb, stb, sti,
                           H, GROUPS, T, S, D,
                           BLOCK_T: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
                           PRECISION: tl.constexpr):
    pid_bh, pid_t = tl.program_id(0), tl.program_id(1)
    b, h = pid_bh // H, pid_bh % H
    kvh = h // GROUPS
    offs_t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < D
    q = tl.load(Q + b * sqb + h * sqh + offs_t[:, None] * sqt + offs_d[None, :],
                mask=(offs_t[:, None] < T) & d_ok[None, :], other=0.0)
    m_i = tl.full([BLOCK_T], NEG, tl.float32)
    l_i = tl.zeros([BLOCK_T], tl.float32)
    acc = tl.zeros([BLOCK_T, BLOCK_D], tl.float32)
    k_base, v_base = K + b * skb + kvh * skh, V + b * svb + kvh * svh
    for start in range(0, S, BLOCK_N):  # the prefix: read once for the whole query block
        offs_n = start + tl.arange(0, BLOCK_N)
        n_ok = offs_n < S
        kblk = tl.load(k_base + offs_n[None, :] * skn + offs_d[:, None], mask=n_ok[None, :] & d_ok[:, None], other=0.0)
        vblk = tl.load(v_base + offs_n[:, None] * svn + offs_d[None, :], mask=n_ok[:, None] & d_ok[None, :], other=0.0)
        valid = tl.load(PV + b * spb + offs_n, mask=n_ok, other=0) != 0
        s = tl.dot(q, kblk, input_precision=PRECISION) * scale
        s = tl.where(valid[None, :], s, NEG)
        m_i, l_i, acc = _online_update(s, vblk, m_i, l_i, acc, PRECISION)
    for start in range(0, T, BLOCK_N):  # the tree: each query sees its ancestors and itself
        offs_n = start + tl.arange(0, BLOCK_N)
        n_ok = offs_n < T
        kblk = tl.load(k_base + (S + offs_n)[None, :] * skn + offs_d[:, None], mask=n_ok[None, :] & d_ok[:, None],
                       other=0.0)
        vblk = tl.load(v_base + (S + offs_n)[:, None] * svn + offs_d[None, :], mask=n_ok[:, None] & d_ok[None, :],
                       other=0.0)
        seen = tl.load(TM + b * stb + offs_t[:, None] * sti + offs_n[None, :],
                       mask=(offs_t[:, None] < T) & n_ok[None, :], other=0) != 0
        s = tl.dot(q, kblk, input_precision=PRECISION) * scale
        s = tl.where(seen, s, NEG)
        m_i, l_i, acc = _online_update(s, vblk, m_i, l_i, acc, PRECISION)
    out = acc / l_i[:, None]
    tl.store(O + b * sob + h * soh + offs_t[:, None] * sot + offs_d[None, :], out.to(O.dtype.element_ty),
             mask=(offs_t[:, None] < T) & d_ok[None, :])


def triton_tree_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, prefix_valid: torch.Tensor,
                          tree_mask: torch.Tensor, scale: float | None = None, block_t: int = 16,
                          block_n: int = 64) -> torch.Tensor:
    """Same contract as `reference_tree_attention`."""
    B, H, T, D = q.shape
    S = k.shape[2] - T
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    pv = prefix_valid.to(torch.int8).contiguous()
    tm = tree_mask.to(torch.int8).contiguous()
    if S == 0:
        pv = torch.zeros(B, 1, dtype=torch.int8, device=q.device)
    out = torch.empty_like(q)
    block_t = max(16, min(block_t, triton.next_power_of_2(T)))
    grid = (B * H, triton.cdiv(T, block_t))
    _tree_attention_kernel[grid](
        q, k, v, out, pv, tm, scale if scale is not None else D ** -0.5,
        q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),
        v.stride(0), v.stride(1), v.stride(2), out.stride(0), out.stride(1), out.stride(2),
        pv.stride(0), tm.stride(0), tm.stride(1),
        H, H // k.shape[1], T, S, D,
        BLOCK_T=block_t, BLOCK_N=block_n, BLOCK_D=max(16, triton.next_power_of_2(D)),
        PRECISION="ieee" if q.dtype == torch.float32 else "tf32")  # fp32 stays fp32 (no TF32 rounding)
    return out
