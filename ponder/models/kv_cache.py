"""A KV cache that grows in place. transformers' DynamicLayer appends by torch.cat, copying
the whole cache every decode step (about 1 GB per step for 16 rows of a 1,400-token prompt
on SmolLM2); this layer writes new entries into a buffer preallocated with room to grow."""

from __future__ import annotations

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class PreallocatedLayer(DynamicLayer):
    def __init__(self, room: int):
        super().__init__()
        self.room, self.length = room, 0
        self._k = self._v = None  # [rows, kv_heads, capacity, head_dim]

    def _expose(self) -> None:
        self.keys, self.values = self._k[:, :, : self.length], self._v[:, :, : self.length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n, k = self.length, key_states.shape[-2]
        if self._k is None or n + k > self._k.shape[-2]:
            shape = (*key_states.shape[:2], n + k + self.room, key_states.shape[-1])
            new_k, new_v = key_states.new_empty(shape), value_states.new_empty(shape)
            if n:
                new_k[:, :, :n], new_v[:, :, :n] = self._k[:, :, :n], self._v[:, :, :n]
            self._k, self._v = new_k, new_v
        self._k[:, :, n : n + k] = key_states
        self._v[:, :, n : n + k] = value_states
        self.length = n + k
        self._expose()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def crop(self, max_length: int) -> None:
        """Keep the first `max_length` positions (negative: drop that many from the end)."""
        keep = max_length if max_length >= 0 else self.length + max_length
        if self.length and 0 <= keep < self.length:
            self.length = keep
            self._expose()

    def keep_tail(self, start: int, index: torch.Tensor) -> None:
        """Of the positions from `start` on, keep those in index [rows, m] (per row, in order)
        at start..start+m and drop the rest: the accepted path of a verified token tree."""
        if self.length:
            src = (start + index)[:, None, :, None].expand(-1, self._k.shape[1], -1, self._k.shape[-1])
            m = index.shape[1]
            self._k[:, :, start : start + m] = self._k.gather(2, src)
            self._v[:, :, start : start + m] = self._v.gather(2, src)
            self.length = start + m
            self._expose()

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.length:
            self._k, self._v = self._k[indices], self._v[indices]
            self._expose()

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.length:
            self._k = self._k.repeat_interleave(repeats, dim=0)
            self._v = self._v.repeat_interleave(repeats, dim=0)
            self._expose()


def preallocated_cache(config, room: int) -> DynamicCache:
    """A DynamicCache whose layers keep `room` free slots for new tokens."""
    cache = DynamicCache(config=config)
    cache.layers = [PreallocatedLayer(room) for _ in range(config.get_text_config().num_hidden_layers)]
    return cache
