"""Plain dataclasses that cross component boundaries."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

FINISH_REASONS = ("stop", "length", "budget")


@dataclass
class SamplingParams:
    """How to sample continuations of one prompt.

    `temperature` is one value or a schedule: sample i gets `schedule[i % len(schedule)]`,
    so `[0.3, 0.7, 1.0]` mixes temperatures across the n samples. 0 means greedy.
    """

    n: int = 1
    temperature: float | Sequence[float] = 0.7
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 512
    stop: Sequence[str] = ()
    seed: int | None = None
    extends: bool = False  # intent: later prompts will extend these completions (the next step of a
    # search node); each backend picks its mechanism (HF keeps the completions'
    # KV in its prefix cache, vLLM's automatic prefix caching needs nothing)

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"n must be at least 1, got {self.n}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if any(t < 0 for t in self.temperatures()):
            raise ValueError(f"temperatures must be >= 0, got {self.temperature}")

    def temperatures(self) -> list[float]:
        sched = [self.temperature] if isinstance(self.temperature, (int, float)) else list(self.temperature)
        if not sched:
            raise ValueError("temperature schedule is empty")
        return [float(sched[i % len(sched)]) for i in range(self.n)]


@dataclass
class Completion:
    """One sampled continuation. `logprobs[i]` is log p(token_ids[i]) under the model's
    unmodified distribution (temperature 1, no top-p), so scores are comparable across
    samples drawn at different temperatures."""

    text: str
    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str
    temperature: float = 0.0
    stop_string: str | None = None  # the stop string that ended it (finish_reason "stop", not EOS)

    @property
    def cut_before_start(self) -> bool:
        """The budget stopped this sample before its first token: there is nothing to use."""
        return self.finish_reason == "budget" and not self.token_ids

    @property
    def mean_logprob(self) -> float:
        return sum(self.logprobs) / len(self.logprobs) if self.logprobs else float("-inf")


@dataclass
class Candidate:
    """A full solution a strategy considered, with its extracted answer and scores."""

    text: str
    answer: str | None = None
    completion: Completion | None = None
    scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {"text": self.text, "answer": self.answer, "scores": self.scores}
        if self.completion is not None:
            c = self.completion
            out.update(
                finish_reason=c.finish_reason,
                num_tokens=len(c.token_ids),
                mean_logprob=c.mean_logprob,
                temperature=c.temperature,
            )
        return out


@dataclass
class Result:
    """What a strategy returns: the chosen answer and text, every candidate, the search trace,
    the compute used, and whether the budget ran out before the strategy finished."""

    answer: str | None
    text: str
    candidates: list[Candidate]
    usage: Any  # ponder.budget.Usage
    budget_exhausted: bool
    trace: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.answer,
            "text": self.text,
            "candidates": [c.to_dict() for c in self.candidates],
            "usage": asdict(self.usage),
            "budget_exhausted": self.budget_exhausted,
            "trace": self.trace,
        }
