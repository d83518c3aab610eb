"""Reward models on vLLM's pooling runner: the head's raw logits at every position of a sequence
(`token_classify`, a Qwen2.5-Math-PRM-format PRM and what `ponder train-prm` saves) or at its
last position (`classify`, a sequence-classification ORM), for many sequences in one engine run.

The engine is vLLM's own, in this process, shared like a policy's (`ponder.models.vllm`). Its
pooling runner computes every token of every sequence (vLLM keeps no prefix cache for
per-token pooling), so a PRM on vLLM pays for whole solutions where the HF PRM runs only what a
node adds to its parent; what it wins is batching: every solution of a call in one stream.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ponder.budget import Budget
from ponder.errors import ConfigError


def pooling_scorer(where: str, dtype: str, settings: dict | None, per_token: bool) -> "PoolingScorer":
    """A reward model's head on vLLM (`verifier.backend=vllm`, `verifier.vllm.*` its engine settings)."""
    from ponder.models.vllm import EngineSettings

    try:
        engine = EngineSettings(**({"dtype": dtype} | (settings or {})))
    except TypeError as e:
        raise ConfigError(f"bad verifier.vllm settings: {e}") from None
    return PoolingScorer(where, engine, per_token)


class PoolingScorer:
    """`logits(sequences, budget)` from a reward model's folder, served by vLLM."""

    def __init__(self, folder: str, settings, per_token: bool = True):
        from transformers import AutoConfig

        from ponder.models.hf import shape_from_config
        from ponder.models.vllm import shared_engine

        self.settings, self.task = settings, "token_classify" if per_token else "classify"
        self.engine = shared_engine(folder, folder, self.settings, runner="pooling")
        self.shape = shape_from_config(AutoConfig.from_pretrained(folder))

    def logits(self, sequences: Sequence[list[int]], budget: Budget) -> list[torch.Tensor | None]:
        """Per sequence, the head's logits ([tokens, labels] per token, or [labels] at the last
        token); None for the sequences (from the first the budget refuses on) left unscored.
        Each scored sequence is one verifier call that computes all its tokens."""
        from vllm import PoolingParams

        from ponder.models.vllm import next_request_id

        if any(len(ids) >= self.settings.max_model_len for ids in sequences):
            raise ValueError(f"a sequence does not fit the scorer's max_model_len={self.settings.max_model_len}")
        out: list[torch.Tensor | None] = [None] * len(sequences)
        pending = {}
        try:
            for i, ids in enumerate(sequences):
                flops = self.shape.forward_flops(len(ids), 0)
                if budget.affordable_verifier_calls(1) < 1 or not budget.can_prefill(len(ids), flops):
                    break
                budget.charge(verifier_calls=1, prompt_tokens=len(ids), forward_passes=int(not pending), flops=flops)
                rid = next_request_id()
                pending[rid] = (i, len(ids))
                params = PoolingParams(task=self.task, use_activation=False)
                self.engine.add_request(rid, {"prompt_token_ids": list(ids)}, params)
            while pending:
                for o in self.engine.step():
                    if o.request_id in pending and o.finished:
                        i, n = pending.pop(o.request_id)
                        cached = o.num_cached_tokens or 0
                        if cached:  # a cache hit is free, as everywhere else
                            budget.charge(
                                prompt_tokens=-cached,
                                cached_prompt_tokens=cached,
                                flops=self.shape.forward_flops(n - cached, cached) - self.shape.forward_flops(n, 0),
                            )
                        out[i] = o.outputs.data.float().cpu()
        except BaseException:
            self.engine.abort_request(sorted(pending))
            raise
        return out
