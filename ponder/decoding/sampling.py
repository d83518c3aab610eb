"""Turning logits into tokens: temperature, top-k, top-p, and seeded sampling."""

from __future__ import annotations

import torch


def processed_probs(
    logits: torch.Tensor, temperatures: torch.Tensor, top_p: float = 1.0, top_k: int = 0
) -> torch.Tensor:
    """The distribution tokens are drawn from: logits [rows, vocab] float32 after temperature
    [rows], top-k and top-p. Rows with temperature 0 get all mass on the argmax."""
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
    greedy = temperatures == 0
    if greedy.any():
        probs[greedy] = torch.nn.functional.one_hot(logits[greedy].argmax(-1), logits.shape[-1]).to(probs.dtype)
    return probs


def draw(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per row of probs [rows, vocab] (unnormalised is fine): a categorical draw by
    inverting the CDF, with one uniform per row. The CDF is summed in float64, so no token's
    chance is off by more than float64 rounding; a token of probability 0 is never drawn. (The
    exponential race draws a number per vocabulary entry: a sixth of a CPU decode step.)"""
    cdf = probs.double().cumsum(-1)
    total = cdf[:, -1]
    if not bool(((total > 0) & total.isfinite()).all()):  # else searchsorted gives an index past the vocabulary
        raise FloatingPointError(
            "cannot sample: a row of probabilities is all zero, NaN or inf (NaN or inf "
            "logits? float16 can overflow: load the model in float32 or bfloat16)"
        )
    u = torch.rand(probs.shape[0], 1, generator=generator, dtype=torch.float64, device=probs.device)
    return torch.searchsorted(cdf, u * total[:, None], right=True)[:, 0]


def sample_tokens(
    logits: torch.Tensor,
    temperatures: torch.Tensor,
    top_p: float = 1.0,
    top_k: int = 0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample one token per row; rows with temperature 0 take the argmax.

    logits: [rows, vocab] float32; temperatures: [rows]. Returns tokens [rows] and their
    log-probabilities under the unmodified distribution [rows].
    """
    logprobs = torch.log_softmax(logits, dim=-1)
    probs = processed_probs(logits, temperatures, top_p, top_k)
    tokens = torch.where(temperatures == 0, logits.argmax(-1), draw(probs, generator))
    return tokens, logprobs.gather(-1, tokens[:, None])[:, 0]


def make_generator(seed: int | None, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    return g
