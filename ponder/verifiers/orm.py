"""Outcome reward models: hub sequence-classification models that score a whole solution
(e.g. Skywork-Reward, OpenAssistant reward models, ArmoRM-style single-logit heads)."""

from __future__ import annotations

from typing import Sequence

import torch

from ponder.budget import Budget
from ponder.models.hf import model_shape
from ponder.types import Candidate
from ponder.verifiers.math import answers_equal, extract_answer
from ponder.verifiers.pooling import pooling_scorer


class RewardModel:
    """Reward of (prompt, solution): the single logit of a one-label head, or the log-odds of
    the last label for a classifier (label 1 = "good" by convention). The conversation is
    rendered with the reward model's chat template when it has one."""

    name = "orm"

    def __init__(
        self,
        path: str,
        dtype: str = "auto",
        device: str = "auto",
        max_length: int = 4096,
        backend: str = "hf",
        vllm: dict | None = None,
    ):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from ponder.errors import ConfigError, ModelNotFound
        from ponder.models.loading import pick_device, pick_dtype, placed, resolve

        kind, where = resolve(path)
        if kind != "pretrained":
            raise ModelNotFound(
                f"verifier.path='{path}' must be a hub id or a folder with a "
                f"sequence-classification reward model (GGUF is for causal LMs)"
            )
        dev, self.scorer, self.max_length = pick_device(device), None, max_length
        if backend not in ("hf", "vllm"):
            raise ConfigError(f"verifier.backend must be hf or vllm; got {backend!r}")
        if backend == "vllm":  # vLLM's pooling runner: every candidate of a call in one engine run
            self.tokenizer = AutoTokenizer.from_pretrained(where)
            self.scorer = pooling_scorer(where, dtype, vllm, per_token=False)
            self.shape = self.scorer.shape
            return
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(where)
            self.network = placed(
                AutoModelForSequenceClassification.from_pretrained(where, dtype=pick_dtype(dtype, dev)), dev
            )
        except OSError as e:
            raise ModelNotFound(f"could not load reward model '{path}': {e}") from None
        self.shape, self.device = model_shape(self.network), dev

    scores_steps = False
    needs_model = True
    same_answer = staticmethod(answers_equal)

    def bind(self, model) -> None:
        pass  # has its own network

    def extract_answer(self, text: str) -> str | None:
        return extract_answer(text)

    def render(self, prompt: str, solution: str) -> list[int]:
        if getattr(self.tokenizer, "chat_template", None):
            messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": solution}]
            text = self.tokenizer.apply_chat_template(messages, tokenize=False)
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        else:
            ids = self.tokenizer(prompt + "\n" + solution)["input_ids"]
        return ids[-self.max_length :]

    @staticmethod
    def reward(logits: torch.Tensor) -> float:
        """The single logit, or the last label's log-odds against the others."""
        return logits[0].item() if logits.numel() == 1 else (logits[-1] - torch.logsumexp(logits[:-1], 0)).item()

    def score(self, prompt: str, candidates: Sequence[Candidate], budget: Budget) -> list[float]:
        if self.scorer is not None:
            got = self.scorer.logits([self.render(prompt, c.text) for c in candidates], budget)
            return [float("nan") if g is None else self.reward(g) for g in got]
        scores = []
        for i, cand in enumerate(candidates):
            ids = self.render(prompt, cand.text)
            flops = self.shape.forward_flops(len(ids), 0)
            if budget.affordable_verifier_calls(1) < 1 or not budget.can_prefill(len(ids), flops):
                scores.extend([float("nan")] * (len(candidates) - i))
                break
            with torch.inference_mode():
                logits = self.network(input_ids=torch.tensor([ids], device=self.device)).logits[0].float()
            budget.charge(verifier_calls=1, prompt_tokens=len(ids), forward_passes=1, flops=flops)
            scores.append(self.reward(logits))
        return scores
