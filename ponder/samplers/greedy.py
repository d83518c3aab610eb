"""Greedy decoding: the baseline every inference-time method is measured against."""

from __future__ import annotations

from ponder.budget import Budget
from ponder.samplers.population import Sampling, result


class Greedy:
    uses_verifier = False

    def __init__(self, max_new_tokens: int = 512, stop=()):
        self.sampling = Sampling(temperature=0.0, max_new_tokens=max_new_tokens, stop=stop)

    def run(self, model, prompt: str, verifier, budget: Budget):
        cands = self.sampling.draw(model, prompt, verifier, budget, n=1)
        best = cands[0] if cands else None
        return result(best.answer if best else None, best.text if best else "", cands, budget)
