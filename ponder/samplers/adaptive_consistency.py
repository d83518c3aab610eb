"""Adaptive consistency: self-consistency that stops sampling once more samples cannot change
the outcome ("Let's Sample Step by Step: Adaptive-Consistency for Efficient Reasoning and
Coding with LLMs", Aggarwal et al. 2023).

Samples come in rounds of `batch`; after each round sampling stops when the leader cannot be
overturned by the samples still allowed (leader - runner-up > remaining), or, after
`min_samples`, when the leader's share of the votes reaches `threshold`.
"""

from __future__ import annotations

from ponder.budget import Budget
from ponder.errors import check_number
from ponder.samplers.population import Sampling, group_by_answer
from ponder.samplers.self_consistency import vote_result


class AdaptiveConsistency:
    uses_verifier = False

    def __init__(self, n: int = 16, batch: int = 4, min_samples: int = 4, threshold: float = 0.75, **sampling):
        self.n = check_number("strategy.n", n, minimum=1, integer=True)
        self.batch = check_number("strategy.batch", batch, minimum=1, integer=True)
        self.min_samples = check_number("strategy.min_samples", min_samples, minimum=1, integer=True)
        self.threshold = check_number("strategy.threshold", threshold, minimum=0, maximum=1)
        self.sampling = Sampling(**sampling)

    def decided(self, groups, drawn: int) -> str | None:
        votes = sorted((len(g.members) for g in groups), reverse=True) or [0]
        lead, second = votes[0], (votes[1] if len(votes) > 1 else 0)
        if lead - second > self.n - drawn:
            return "unbeatable"
        if drawn >= self.min_samples and lead / drawn >= self.threshold:
            return "threshold"
        return None

    def run(self, model, prompt: str, verifier, budget: Budget):
        cands, trace, groups, round_ = [], [], [], 0
        while len(cands) < self.n:
            k = min(self.batch, self.n - len(cands))
            new = self.sampling.draw(model, prompt, verifier, budget, k, round_)
            cands += new
            round_ += 1
            groups = group_by_answer(cands, verifier)
            why = self.decided(groups, len(cands))
            trace.append(
                {
                    "round": round_,
                    "samples": len(cands),
                    "votes": {g.answer: len(g.members) for g in groups},
                    "stopped": why,
                }
            )
            if why or len(new) < k or budget.exhausted:
                break
        return vote_result(cands, groups, verifier, budget, trace)
