"""LLM-as-judge: any backend model asked whether a solution is correct; the score is
P("Yes") / (P("Yes") + P("No")) for its next token ("Judging LLM-as-a-Judge with MT-Bench
and Chatbot Arena", Zheng et al. 2023)."""
from __future__ import annotations

import math
from typing import Sequence

from ponder.budget import Budget
from ponder.types import Candidate
from ponder.verifiers.math import answers_equal, extract_answer

TEMPLATE = ("Here is a problem and a proposed solution.\n\nProblem:\n{question}\n\nProposed solution:\n"
            "{solution}\n\nIs the proposed solution correct? Answer with one word, Yes or No.")


class LLMJudge:
    """`model` is a LanguageModel, a model preset/path to load, or None to judge with the
    generator's own model (bound by the Generator)."""

    name = "llm_judge"

    def __init__(self, model=None, template: str = TEMPLATE, yes: str = "Yes", no: str = "No"):
        if isinstance(model, str):
            from ponder.models import load_model
            model = load_model(model)
        self.model, self.template, self.yes, self.no = model, template, yes, no

    def bind(self, model) -> None:
        if self.model is None:
            self.model = model

    same_answer = staticmethod(answers_equal)

    def extract_answer(self, text: str) -> str | None:
        return extract_answer(text)

    def score(self, prompt: str, candidates: Sequence[Candidate], budget: Budget) -> list[float]:
        if self.model is None:
            raise ValueError("LLMJudge has no model: pass one, or use it through a Generator")
        scores = []
        for i, cand in enumerate(candidates):
            if budget.affordable_verifier_calls(1) < 1:
                scores.extend([float("nan")] * (len(candidates) - i))
                break
            budget.charge(verifier_calls=1)
            question = self.model.chat(self.template.format(question=prompt, solution=cand.text))
            lp_yes, lp_no = self.model.score([question, question], [self.yes, self.no], budget)
            if math.isinf(lp_yes) and math.isinf(lp_no):
                scores.append(float("nan"))  # the budget ran out mid-judgement
            else:
                scores.append(1.0 / (1.0 + math.exp(lp_no - lp_yes)))
        return scores
