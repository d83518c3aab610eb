"""Beam search over steps with a PRM, and DVTS ("Scaling LLM Test-Time Compute Optimally can be
More Effective than Scaling Model Parameters", Snell et al. 2024; the search-and-learn recipe).

Beam search: the question is expanded into n first steps; every round keeps the n / beam_width
best unfinished partial solutions by PRM value and expands each into beam_width next steps.
DVTS (diverse verifier tree search) splits the n into n / beam_width independent subtrees and
keeps only the best child within each, so one strong early step cannot take over the search.
Both stop when n solutions have finished, nothing is left to expand, the steps run out, or the
budget does; the answer is the finished solution with the best PRM value.
"""

from __future__ import annotations

from ponder.budget import Budget
from ponder.errors import ConfigError, check_number
from ponder.search.steps import Node, Stepper, node_result
from ponder.verifiers.prm import check_aggregate


class BeamSearch:
    uses_verifier = True

    def __init__(self, n: int = 8, beam_width: int = 4, score: str = "last", **step):
        self.n = check_number("strategy.n", n, minimum=1, integer=True)
        self.beam_width = check_number("strategy.beam_width", beam_width, minimum=1, integer=True)
        if n % beam_width:
            raise ConfigError(f"strategy.n={n} must be a multiple of strategy.beam_width={beam_width}")
        self.how, self.step = check_aggregate("strategy.score", score), step
        Stepper(**step)  # bad step settings fail now

    def first(self) -> tuple[list[Node], int]:
        """The roots to expand first and how many children each gets."""
        return [Node()], self.n

    def select(self, groups: list[list[Node]]) -> list[Node]:
        live = sorted((c for g in groups for c in g if not c.done), key=lambda c: c.value(self.how), reverse=True)
        return live[: self.n // self.beam_width]

    def run(self, model, prompt: str, verifier, budget: Budget):
        stepper = Stepper(**self.step)
        active, k = self.first()
        finished, trace = [], []
        while active and len(finished) < self.n and not budget.exhausted:
            groups = stepper.expand(model, prompt, active, k, verifier, budget)
            new = [c for g in groups for c in g]
            if not new:
                break
            stepper.score(verifier, prompt, new, budget)
            finished += [c for c in new if c.done]
            active, k = self.select(groups), self.beam_width
            trace.append(
                {
                    "round": stepper.round,
                    "expanded": len(new),
                    "finished": len(finished),
                    "best": max((c.value(self.how) for c in new), default=None),
                }
            )
        return node_result(finished or active, stepper, verifier, budget, self.how, trace)


class DVTS(BeamSearch):
    def first(self) -> tuple[list[Node], int]:
        return [Node() for _ in range(self.n // self.beam_width)], self.beam_width

    def select(self, groups: list[list[Node]]) -> list[Node]:
        best = [max(live, key=lambda c: c.value(self.how)) for g in groups if (live := [c for c in g if not c.done])]
        return best
