"""The tree-attention kernel in Triton.

A tree is small (tens to hundreds of queries) and the prefix long, so the work is laid out
like flash-decoding rather than like a prefill:
- the query heads that share a KV head are packed into one block of rows (grouped-query
  attention reads each KV head's prefix once for all of them, not once per query head);
- the prefix is split across programs (split-KV) when there would otherwise be too few
  programs to fill the GPU. Each program streams its slice of the prefix in blocks of BLOCK_N
  slots (masked by the row's prefix validity) with an online softmax (running max, sum and
  output in fp32); the program with the last slice also runs over the tree's own nodes under
  the tree mask. A second small kernel merges the slices by their log-sum-exp.
fp32 inputs are multiplied in full fp32 (no TF32). Runs on CPU under TRITON_INTERPRET=1
(fp32/fp16: the interpreter mishandles bf16 dots).
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl

NEG = tl.constexpr(-1.0e30)  # finite: a block masked for a query contributes exp(NEG - max) = 0 once it sees a key


@triton.jit
def _online_update(s, vblk, m_i, l_i, acc, PRECISION: tl.constexpr):
    m_new = tl.maximum(m_i, tl.max(s, 1))
    alpha = tl.exp(m_i - m_new)
    p = tl.exp(s - m_new[:, None])
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = acc * alpha[:, None] + tl.dot(p.to(vblk.dtype), vblk, input_precision=PRECISION)
    return m_new, l_i, acc


@triton.jit
def _tree_attention_kernel(
    Q,
    K,
    V,
    O,
    LSE,
    PV,
    TM,
    scale,
    sqb,
    sqh,
    sqt,
    skb,
    skh,
    skn,
    svb,
    svh,
    svn,
    sob,
    soh,
    sos,
    sot,
    slb,
    slh,
    sls,
    spb,
    stb,
    sti,
    KVH,
    GROUPS,
    T,
    S,
    CHUNK,
    D,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
    PRECISION: tl.constexpr,
    SPLIT: tl.constexpr,
):
    pid_bk, pid_m, split = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    b, kvh = pid_bk // KVH, pid_bk % KVH
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)  # rows: (query head of this KV head, tree node)
    m_ok = offs_m < GROUPS * T
    h, t = kvh * GROUPS + offs_m // T, offs_m % T
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < D
    q = tl.load(
        Q + b * sqb + h[:, None] * sqh + t[:, None] * sqt + offs_d[None, :],
        mask=m_ok[:, None] & d_ok[None, :],
        other=0.0,
    )
    m_i = tl.full([BLOCK_M], NEG, tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    k_base, v_base = K + b * skb + kvh * skh, V + b * svb + kvh * svh
    lo = split * CHUNK
    hi = tl.minimum(lo + CHUNK, S)
    for start in range(lo, hi, BLOCK_N):  # this program's slice of the prefix, read once for all rows
        offs_n = start + tl.arange(0, BLOCK_N)
        n_ok = offs_n < hi
        kblk = tl.load(k_base + offs_n[None, :] * skn + offs_d[:, None], mask=n_ok[None, :] & d_ok[:, None], other=0.0)
        vblk = tl.load(v_base + offs_n[:, None] * svn + offs_d[None, :], mask=n_ok[:, None] & d_ok[None, :], other=0.0)
        valid = tl.load(PV + b * spb + offs_n, mask=n_ok, other=0) != 0
        s = tl.dot(q, kblk, input_precision=PRECISION) * scale
        s = tl.where(valid[None, :], s, NEG)
        m_i, l_i, acc = _online_update(s, vblk, m_i, l_i, acc, PRECISION)
    if split == tl.num_programs(2) - 1:  # the tree: each node sees its ancestors and itself
        for start in range(0, T, BLOCK_N):
            offs_n = start + tl.arange(0, BLOCK_N)
            n_ok = offs_n < T
            kblk = tl.load(
                k_base + (S + offs_n)[None, :] * skn + offs_d[:, None], mask=n_ok[None, :] & d_ok[:, None], other=0.0
            )
            vblk = tl.load(
                v_base + (S + offs_n)[:, None] * svn + offs_d[None, :], mask=n_ok[:, None] & d_ok[None, :], other=0.0
            )
            seen = (
                tl.load(TM + b * stb + t[:, None] * sti + offs_n[None, :], mask=m_ok[:, None] & n_ok[None, :], other=0)
                != 0
            )
            s = tl.dot(q, kblk, input_precision=PRECISION) * scale
            s = tl.where(seen, s, NEG)
            m_i, l_i, acc = _online_update(s, vblk, m_i, l_i, acc, PRECISION)
    out = acc / l_i[:, None]
    tl.store(
        O + b * sob + h[:, None] * soh + split * sos + t[:, None] * sot + offs_d[None, :],
        out.to(O.dtype.element_ty),
        mask=m_ok[:, None] & d_ok[None, :],
    )
    if SPLIT:
        tl.store(LSE + b * slb + h * slh + split * sls + t, m_i + tl.log(l_i), mask=m_ok)


@triton.jit
def _merge_kernel(
    P, LSE, O, H, SPLITS, T, D, spr, sps, spt, slr, sls, sob, soh, sot, BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr
):
    """O[b, h, t] = sum over slices of P[row, slice, t] weighted by softmax(LSE[row, :, t]),
    row = b * H + h (P and LSE are contiguous; O may be a strided view)."""
    row, pid_t = tl.program_id(0), tl.program_id(1)
    offs_t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    offs_d = tl.arange(0, BLOCK_D)
    ok = (offs_t[:, None] < T) & (offs_d[None, :] < D)
    m_i = tl.full([BLOCK_T], NEG, tl.float32)
    l_i = tl.zeros([BLOCK_T], tl.float32)
    acc = tl.zeros([BLOCK_T, BLOCK_D], tl.float32)
    for s in range(0, SPLITS):
        lse = tl.load(LSE + row * slr + s * sls + offs_t, mask=offs_t < T, other=NEG)
        part = tl.load(P + row * spr + s * sps + offs_t[:, None] * spt + offs_d[None, :], mask=ok, other=0.0)
        m_new = tl.maximum(m_i, lse)
        alpha, w = tl.exp(m_i - m_new), tl.exp(lse - m_new)
        l_i = l_i * alpha + w
        acc = acc * alpha[:, None] + w[:, None] * part
        m_i = m_new
    tl.store(
        O + (row // H) * sob + (row % H) * soh + offs_t[:, None] * sot + offs_d[None, :],
        (acc / l_i[:, None]).to(O.dtype.element_ty),
        mask=ok,
    )


@functools.cache
def _multiprocessors(index: int | None) -> int:
    return torch.cuda.get_device_properties(
        index if index is not None else torch.cuda.current_device()
    ).multi_processor_count


def _split_count(programs: int, S: int, block_n: int, device: torch.device) -> int:
    """Enough prefix slices for about two programs per multiprocessor, each slice at least
    four blocks of the prefix long."""
    if S == 0:
        return 1
    sms = _multiprocessors(device.index) if device.type == "cuda" else 4
    return max(1, min(triton.cdiv(2 * sms, programs), triton.cdiv(S, 4 * block_n)))


def triton_tree_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    prefix_valid: torch.Tensor,
    tree_mask: torch.Tensor,
    scale: float | None = None,
    splits: int | None = None,
    block_m: int = 64,
    block_n: int = 64,
    num_warps: int = 4,
    num_stages: int | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Same contract as `reference_tree_attention`. Inputs may be strided views (a cache's
    slots, a transposed projection) as long as their last dimension is contiguous; the masks
    may be bool or integer views. `out` ([B, H, T, D], any such strides) receives the result
    if given. `splits` fixes the number of prefix slices (default: chosen from the grid size
    and the GPU's multiprocessor count)."""
    B, H, T, D = q.shape
    KVH = k.shape[1]
    S, groups = k.shape[2] - T, H // KVH
    q, k, v, pv, tm = (x if x.stride(-1) == 1 else x.contiguous() for x in (q, k, v, prefix_valid, tree_mask))
    if not S:
        pv = torch.zeros(B, 1, dtype=torch.int8, device=q.device)
    block_m = max(16, min(block_m, triton.next_power_of_2(groups * T)))
    row_blocks = triton.cdiv(groups * T, block_m)
    if splits is None:
        splits = _split_count(B * KVH * row_blocks, S, block_n, q.device)
    chunk = triton.cdiv(triton.cdiv(S, splits), block_n) * block_n if S else 0
    splits = triton.cdiv(S, chunk) if S else 1  # no empty slice
    out = torch.empty_like(q, memory_format=torch.contiguous_format) if out is None else out
    if splits == 1:
        part, lse = out[:, :, None], out  # written in place; no log-sum-exp needed
    else:
        part = torch.empty(B, H, splits, T, D, dtype=torch.float32, device=q.device)
        lse = torch.empty(B, H, splits, T, dtype=torch.float32, device=q.device)
    extra = {} if num_stages is None else {"num_stages": num_stages}
    _tree_attention_kernel[(B * KVH, row_blocks, splits)](
        q,
        k,
        v,
        part,
        lse,
        pv,
        tm,
        scale if scale is not None else D**-0.5,
        q.stride(0),
        q.stride(1),
        q.stride(2),
        k.stride(0),
        k.stride(1),
        k.stride(2),
        v.stride(0),
        v.stride(1),
        v.stride(2),
        part.stride(0),
        part.stride(1),
        part.stride(2),
        part.stride(3),
        lse.stride(0),
        lse.stride(1),
        lse.stride(2),
        pv.stride(0),
        tm.stride(0),
        tm.stride(1),
        KVH,
        groups,
        T,
        S,
        chunk,
        D,
        BLOCK_M=block_m,
        BLOCK_N=block_n,
        BLOCK_D=max(16, triton.next_power_of_2(D)),
        PRECISION="ieee" if q.dtype == torch.float32 else "tf32",  # fp32 stays fp32 (no TF32 rounding)
        SPLIT=splits > 1,
        num_warps=num_warps,
        **extra,
    )
    if splits > 1:
        block_t = max(16, min(64, triton.next_power_of_2(T)))
        _merge_kernel[(B * H, triton.cdiv(T, block_t))](
            part,
            lse,
            out,
            H,
            splits,
            T,
            D,
            part.stride(1),
            part.stride(2),
            part.stride(3),
            lse.stride(1),
            lse.stride(2),
            out.stride(0),
            out.stride(1),
            out.stride(2),
            BLOCK_T=block_t,
            BLOCK_D=max(16, triton.next_power_of_2(D)),
        )
    return out
