"""An LRU cache of prompt KV states, and of finished completions' when a request asks to keep
them (`SamplingParams.extends`), so that extending an earlier prefix (the n-th sample of a
prompt, a search step after its parent) computes only the new tokens."""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass

import torch


@dataclass
class CachedPrefix:
    tokens: tuple[int, ...]
    kv: list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values [1, kv_heads, len, head_dim]
    output: torch.Tensor | None  # what the owner keeps of the pass: a policy the float32
    # logits after the last token [vocab] (None for a kept
    # completion), a PRM its step scores at every position [len]

    def __len__(self) -> int:
        return len(self.tokens)


def cache_from(config, kv, length: int | None = None):
    """A fresh DynamicCache holding the first `length` positions of `kv` (copied, so the
    cached entry is never written to)."""
    from transformers import DynamicCache

    cache = DynamicCache(config=config)
    for layer, (k, v) in enumerate(kv):
        cache.update(k[:, :, :length], v[:, :, :length], layer)
    return cache


class PrefixCache:
    """Keeps whole-prefix KV states, least recently used evicted past `max_tokens` in total."""

    def __init__(self, max_tokens: int = 65536):
        self.max_tokens = max_tokens
        self._entries: OrderedDict[tuple[int, ...], CachedPrefix] = OrderedDict()
        self._size = 0

    def lookup(self, ids: list[int]) -> tuple[CachedPrefix | None, int]:
        """The entry sharing the longest prefix with `ids`, and the shared length."""
        ids = tuple(ids)
        if (exact := self._entries.get(ids)) is not None:
            self._entries.move_to_end(exact.tokens)
            return exact, len(ids)
        best, best_len = None, 0
        for entry in self._entries.values():
            n = len(os.path.commonprefix([entry.tokens, ids]))
            if n > best_len:
                best, best_len = entry, n
        if best is not None:
            self._entries.move_to_end(best.tokens)
        return best, best_len

    def put(self, entry: CachedPrefix) -> None:
        if entry.tokens in self._entries or len(entry) > self.max_tokens:
            return
        self._entries[entry.tokens] = entry
        self._size += len(entry)
        while self._size > self.max_tokens:
            _, old = self._entries.popitem(last=False)
            self._size -= len(old)

    def clear(self) -> None:
        self._entries.clear()
        self._size = 0
