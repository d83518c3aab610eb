"""Turning logits into tokens: temperature, top-k, top-p, and seeded sampling."""
from __future__ import annotations

import torch


def sample_tokens(logits: torch.Tensor, temperatures: torch.Tensor, top_p: float = 1.0, top_k: int = 0,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample one token per row; rows with temperature 0 take the argmax.

    logits: [rows, vocab] float32; temperatures: [rows]. Returns tokens [rows] and their
    log-probabilities under the unmodified distribution [rows]. Sampling is
    `argmax(probs / Exp(1))` (the exponential race), which equals a categorical draw.
    """
    logprobs = torch.log_softmax(logits, dim=-1)
    scaled = logits / temperatures.clamp_min(1e-6)[:, None]
    if top_k > 0:
        kth = torch.topk(scaled, min(top_k, scaled.shape[-1]), dim=-1).values[:, -1:]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(scaled, dim=-1, descending=True)
        sorted_probs = torch.softmax(sorted_logits, dim=-1)
        drop = sorted_probs.cumsum(-1) - sorted_probs > top_p  # keep the smallest set reaching top_p
        scaled = scaled.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    probs = torch.softmax(scaled, dim=-1)
    race = torch.empty_like(probs).exponential_(1.0, generator=generator)
    tokens = torch.where(temperatures == 0, logits.argmax(-1), (probs / race).argmax(-1))
    return tokens, logprobs.gather(-1, tokens[:, None])[:, 0]


def make_generator(seed: int | None, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    return g
