"""Pre-packed linear weights for CPU inference.

On these CPUs a forward pass over a few tokens costs 2-5x a one-token pass with plain
`nn.Linear`, though it reads the same weights: PyTorch's fp32 matrix product for more than one
row is far slower per weight read than its one-row path (most likely it re-lays-out the weight
on every call). oneDNN can pack each weight once (`torch.ops.mkldnn._reorder_linear_weight`,
what torch.compile's CPU backend does with frozen weights); with packed weights, passes over a
handful of tokens (speculative verification, batched decoding) cost little more than one token's.

`pack_linears(network)` switches every fp32 CPU `nn.Linear` to packed weights for inference,
and every bf16 one on CPUs with bf16 instructions (`bf16_available`), where packed bf16 runs a
token after a short context up to twice as fast as packed fp32 (docs/benchmarks.md: dtype). The
dense weight stays (other code reads it); a module whose weight changed in place or was replaced is
repacked on its next call, and while autograd records, or for inputs of another dtype, the plain path runs.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn


def available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def bf16_available() -> bool:
    """Whether this CPU runs packed bf16 weights natively (AVX-512 BF16 or AMX)."""
    return available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def _packable(w: torch.Tensor) -> bool:
    return w.device.type == "cpu" and (w.dtype == torch.float32 or (w.dtype == torch.bfloat16 and bf16_available()))


def _version(w: torch.Tensor) -> int:
    return 0 if w.is_inference() else w._version  # inference tensors cannot change in place


def _pack(module: nn.Linear):
    w = module.weight
    module._ponder_packed = (w.data_ptr(), _version(w), torch.ops.mkldnn._reorder_linear_weight(w.detach(), 8))


def _forward(self: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    w = self.weight
    if x.dtype != w.dtype or (torch.is_grad_enabled() and (w.requires_grad or x.requires_grad)):
        return F.linear(x, w, self.bias)
    if self._ponder_packed[:2] != (w.data_ptr(), _version(w)):  # changed in place, replaced or moved
        if not _packable(w):
            return F.linear(x, w, self.bias)
        _pack(self)
    return torch.ops.mkldnn._linear_pointwise(x, self._ponder_packed[2], self.bias, "none", [], "")


def is_packed(network: nn.Module) -> bool:
    return any(hasattr(m, "_ponder_packed") for m in network.modules())


def pack_linears(network: nn.Module) -> int:
    """Give every fp32 CPU nn.Linear of `network` packed weights; returns how many."""
    if not available():
        return 0
    count = 0
    for m in network.modules():
        if isinstance(m, nn.Linear) and _packable(m.weight) and not hasattr(m, "_ponder_packed"):
            _pack(m)
            m.forward = types.MethodType(_forward, m)
            count += 1
    return count
