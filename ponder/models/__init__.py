"""Model backends behind one contract: text in, completions out."""
from __future__ import annotations

from typing import Protocol, Sequence

from ponder.budget import Budget
from ponder.types import Completion, SamplingParams


class LanguageModel(Protocol):
    tokenizer: object

    def chat(self, user: str) -> str: ...

    def generate(self, prompts: Sequence[str], params: SamplingParams, budget: Budget) -> list[list[Completion]]: ...

    def score(self, prompts: Sequence[str], continuations: Sequence[str], budget: Budget) -> list[float]: ...


def load_model(path: str, backend: str = "hf", dtype: str = "auto", device: str = "auto", decoder=None,
               max_batch_rows: int = 32, prefix_cache_tokens: int = 65536, system_prompt: str | None = None,
               packed_weights: str = "auto"):
    """A model by preset name (smollm2-135m, qwen2.5-coder-0.5b, qwen2.5-coder-1.5b), hub id,
    local folder or GGUF file, behind the chosen backend."""
    from ponder.errors import ConfigError
    from ponder.models.loading import load_pretrained

    if backend != "hf":
        raise ConfigError(f"model.backend must be 'hf' (the only backend in this build); got '{backend}'")
    from ponder.models.hf import HFModel

    network, tokenizer = load_pretrained(path, dtype=dtype, device=device, packed_weights=packed_weights)
    return HFModel(network, tokenizer, name=path, decoder=decoder, max_batch_rows=max_batch_rows,
                   prefix_cache_tokens=prefix_cache_tokens, system_prompt=system_prompt)
