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


class Verifier(Protocol):
    name: str

    def extract_answer(self, text: str) -> str | None: ...

    def score(self, prompt: str, candidates: Sequence[Candidate], budget: Budget) -> list[float]: ...


__all__ = ["Verifier", "CodeVerifier", "LLMJudge", "MathVerifier", "RewardModel"]
