"""Verifiers score candidate solutions: `score(prompt, candidates, budget) -> list[float]`
(NaN where the budget ran out), and extract the answer a candidate states."""

from __future__ import annotations

from typing import Protocol, Sequence

from ponder.budget import Budget
from ponder.types import Candidate
from ponder.verifiers.code import CodeVerifier
from ponder.verifiers.llm_judge import LLMJudge
from ponder.verifiers.math import MathVerifier
from ponder.verifiers.orm import RewardModel
from ponder.verifiers.prm import ProcessRewardModel


class Verifier(Protocol):
    name: str

    def extract_answer(self, text: str) -> str | None: ...

    def score(self, prompt: str, candidates: Sequence[Candidate], budget: Budget) -> list[float]: ...


class StepVerifier(Verifier, Protocol):
    """A process reward model: one score per step (`prm`, or `llm_judge` step by step)."""

    def step_scores(
        self, question: str, solutions: Sequence[list[str]], budget: Budget, known: Sequence[list[float]] | None = None
    ) -> list[list[float]]: ...


__all__ = ["Verifier", "StepVerifier", "ProcessRewardModel", "CodeVerifier", "LLMJudge", "MathVerifier", "RewardModel"]
