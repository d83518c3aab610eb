"""What every population method shares: drawing n full solutions of one prompt, and
grouping them by the answer they state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from ponder.budget import Budget
from ponder.errors import ConfigError, check_number, check_seed
from ponder.types import Candidate, Result, SamplingParams


@dataclass
class Sampling:
    """How solutions are drawn. `temperature` may be a schedule cycled over the samples
    (mixing 0.3/0.7/1.0 helps, "When Life Gives You Samples", 2025)."""

    temperature: float | Sequence[float] = 0.7
    top_p: float = 1.0
    max_new_tokens: int = 512
    stop: Sequence[str] = ()
    seed: int | None = 0

    def __post_init__(self):
        t = self.temperature
        self.schedule = list(t) if isinstance(t, (list, tuple)) else [t]
        if not self.schedule:
            raise ConfigError("strategy.temperature must be a number or a non-empty list of numbers, got []")
        for t in self.schedule:
            check_number("strategy.temperature", t, minimum=0)
        check_number("strategy.top_p", self.top_p, minimum=1e-6, maximum=1)
        check_number("strategy.max_new_tokens", self.max_new_tokens, minimum=1, integer=True)
        check_seed("strategy.seed", self.seed)

    def draw(self, model, prompt: str, verifier, budget: Budget, n: int, round_: int = 0) -> list[Candidate]:
        """n solutions of `prompt`; samples the budget cut off before their first token are dropped."""
        offset = round_ * n  # later rounds continue the temperature schedule
        temps = [self.schedule[(offset + i) % len(self.schedule)] for i in range(n)]
        params = SamplingParams(
            n=n,
            temperature=temps,
            top_p=self.top_p,
            max_new_tokens=self.max_new_tokens,
            stop=self.stop,
            seed=None if self.seed is None else self.seed + round_,
        )
        completions = model.generate([model.chat(prompt)], params, budget)[0]
        return [Candidate(c.text, verifier.extract_answer(c.text), c) for c in completions if not c.cut_before_start]


@dataclass
class AnswerGroup:
    answer: str
    members: list[Candidate] = field(default_factory=list)

    def weight(self, key: str | None = None) -> float:
        return float(len(self.members)) if key is None else sum(c.scores.get(key, 0.0) for c in self.members)

    @property
    def mean_logprob(self) -> float:
        return sum(c.completion.mean_logprob for c in self.members) / len(self.members)


def group_by_answer(candidates: Sequence[Candidate], verifier) -> list[AnswerGroup]:
    """Candidates with an answer, grouped by equivalent answers (the verifier's notion of
    equality: math-verify for math, exact for others)."""
    same = verifier.same_answer
    groups: list[AnswerGroup] = []
    for cand in candidates:
        if cand.answer is None:
            continue
        group = next((g for g in groups if same(g.answer, cand.answer)), None)
        if group is None:
            groups.append(group := AnswerGroup(cand.answer))
        group.members.append(cand)
    return groups


def scored(verifier, prompt: str, candidates: list[Candidate], budget: Budget) -> list[Candidate]:
    """Candidates with the verifier's score recorded; NaN (budget ran out) counts as -inf."""
    for cand, s in zip(candidates, verifier.score(prompt, candidates, budget)):
        cand.scores[verifier.name] = s if s == s else float("-inf")
    return candidates


def result(answer, text: str, candidates: list[Candidate], budget: Budget, trace=None) -> Result:
    return Result(
        answer=answer,
        text=text,
        candidates=candidates,
        usage=budget.usage,
        budget_exhausted=budget.exhausted,
        trace=trace or [],
    )
