"""Lossless speculative decoding: proposers draft token trees, the target verifies them in one
forward pass, one rejection sampler (`verify.accept`) keeps the target's distribution.

The functions below build the decoders the `decoder` config group names."""

from __future__ import annotations

from ponder.speculative.decoder import SpeculativeDecoder
from ponder.speculative.draft_model import DraftModelProposer
from ponder.speculative.early_exit import EarlyExitProposer
from ponder.speculative.medusa import MedusaHeads, MedusaProposer
from ponder.speculative.ngram import NGramProposer
from ponder.speculative.tree import Draft, TokenTree


def draft_model(
    draft: str = "qwen2.5-coder-0.5b",
    num_tokens: int = 4,
    tree_width: int = 1,
    min_confidence: float = 0.0,
    draft_dtype: str = "auto",
    attention: str = "auto",
    min_path_confidence: float = 0.0,
) -> SpeculativeDecoder:
    return SpeculativeDecoder(
        DraftModelProposer(draft, num_tokens, tree_width, min_confidence, draft_dtype, min_path_confidence), attention
    )


def ngram(num_tokens: int = 8, max_ngram: int = 3, min_ngram: int = 1, attention: str = "auto") -> SpeculativeDecoder:
    return SpeculativeDecoder(NGramProposer(num_tokens, max_ngram, min_ngram), attention)


def early_exit(
    exit_layer: int = 8,
    num_tokens: int = 4,
    tree_width: int = 1,
    min_confidence: float = 0.0,
    attention: str = "auto",
    min_path_confidence: float = 0.0,
) -> SpeculativeDecoder:
    return SpeculativeDecoder(
        EarlyExitProposer(exit_layer, num_tokens, tree_width, min_confidence, min_path_confidence), attention
    )


def medusa(
    heads: str,
    tree_width: int = 2,
    choices=None,
    vocab: str = "auto",
    acceptance: str = "exact",
    typical_threshold: float = 0.09,
    typical_alpha: float = 0.3,
    attention: str = "auto",
) -> SpeculativeDecoder:
    return SpeculativeDecoder(
        MedusaProposer(heads, tree_width, choices, vocab), attention, acceptance, typical_threshold, typical_alpha
    )


__all__ = [
    "MedusaHeads",
    "MedusaProposer",
    "medusa",
    "SpeculativeDecoder",
    "DraftModelProposer",
    "EarlyExitProposer",
    "NGramProposer",
    "Draft",
    "TokenTree",
    "draft_model",
    "ngram",
    "early_exit",
]
