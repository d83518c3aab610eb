"""Weighted best-of-N: verifier scores summed over the samples that reach the same answer;
the answer with the largest sum wins ("Making Large Language Models Better Reasoners with
Step-Aware Verifier", Li et al. 2023; "Let's Verify Step by Step", Lightman et al. 2023)."""
from __future__ import annotations

import math

from ponder.budget import Budget
from ponder.errors import check_number
from ponder.samplers.population import Sampling, group_by_answer, result, scored


class WeightedBestOfN:
    uses_verifier = True

    def __init__(self, n: int = 8, **sampling):
        self.n = check_number("strategy.n", n, minimum=1, integer=True)
        self.sampling = Sampling(**sampling)

    def run(self, model, prompt: str, verifier, budget: Budget):
        cands = self.sampling.draw(model, prompt, verifier, budget, self.n)
        if not cands:
            return result(None, "", [], budget)
        cands = scored(verifier, prompt, cands, budget)
        key = verifier.name
        for c in cands:  # a sample the budget left unscored adds nothing
            c.scores[key] = c.scores[key] if math.isfinite(c.scores[key]) else 0.0
        groups = group_by_answer(cands, verifier)
        if not groups:
            best = max(cands, key=lambda c: c.scores[key])
            return result(None, best.text, cands, budget)
        win = max(groups, key=lambda g: g.weight(key))
        best = max(win.members, key=lambda c: c.scores[key])
        trace = [{"answer": g.answer, "weight": g.weight(key), "votes": len(g.members)} for g in groups]
        return result(win.answer, best.text, cands, budget, trace)
