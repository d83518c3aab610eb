"""Outcome reward models: hub sequence-classification models that score a whole solution
(e.g. Skywork-Reward, OpenAssistant reward models, ArmoRM-style single-logit heads)."""

from __future__ import annotations

from typing import Sequence

import torch

from ponder.budget import Budget
from ponder.models.hf import model_shape
from ponder.types import Candidate
from ponder.verifiers.math import answers_equal, extract_answer


class RewardModel:
    """Reward of (prompt, solution): the single logit of a one-label head, or the log-odds of
    the last label for a classifier (label 1 = "good" by convention). The conversation is
    rendered with the reward model's chat template when it has one."""

    name = "orm"

    def __init__(self, path: str, dtype: str = "auto", device: str = "auto", max_length: int = 4096):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from ponder.errors import ModelNotFound
        from ponder.models.loading import pick_device, pick_dtype, placed, resolve

        kind, where = resolve(path)
        if kind != "pretrained":
            raise ModelNotFound(
                f"verifier.path='{path}' must be a hub id or a folder with a "
                f"sequence-classification reward model (GGUF is for causal LMs)"
            )
        dev = pick_device(device)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(where)
            self.network = placed(
                AutoModelForSequenceClassification.from_pretrained(where, dtype=pick_dtype(dtype, dev)), dev
            )
        except OSError as e:
            raise ModelNotFound(f"could not load reward model '{path}': {e}") from None
        self.shape, self.device, self.max_length = model_shape(self.network), dev, max_length

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

    def score(self, prompt: str, candidates: Sequence[Candidate], budget: Budget) -> list[float]:
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
            scores.append(
                logits[0].item() if logits.numel() == 1 else (logits[-1] - torch.logsumexp(logits[:-1], 0)).item()
            )
        return scores
