"""Best-of-N: sample n solutions, return the one the verifier scores highest
("Training Verifiers to Solve Math Word Problems", Cobbe et al. 2021)."""

from __future__ import annotations

from ponder.budget import Budget
from ponder.errors import check_number
from ponder.samplers.population import Sampling, result, scored


class BestOfN:
    uses_verifier = True

    def __init__(self, n: int = 8, **sampling):
        self.n = check_number("strategy.n", n, minimum=1, integer=True)
        self.sampling = Sampling(**sampling)

    def run(self, model, prompt: str, verifier, budget: Budget):
        cands = self.sampling.draw(model, prompt, verifier, budget, self.n)
        if not cands:
            return result(None, "", [], budget)
        return self.choose(scored(verifier, prompt, cands, budget), verifier, budget)

    def choose(self, cands, verifier, budget: Budget):
        best = max(cands, key=lambda c: c.scores[verifier.name])
        return result(best.answer, best.text, cands, budget)
