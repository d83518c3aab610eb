"""Verifiers score candidate solutions: `score(prompt, candidates, budget) -> list[float]`
(NaN where the budget ran out), and extract the answer a candidate states."""

from __future__ import annotations

from ponder.protocols import StepVerifier, Verifier  # the contracts every verifier here implements
from ponder.verifiers.code import CodeVerifier
from ponder.verifiers.llm_judge import LLMJudge
from ponder.verifiers.math import MathVerifier
from ponder.verifiers.orm import RewardModel
from ponder.verifiers.prm import ProcessRewardModel

__all__ = ["Verifier", "StepVerifier", "ProcessRewardModel", "CodeVerifier", "LLMJudge", "MathVerifier", "RewardModel"]
