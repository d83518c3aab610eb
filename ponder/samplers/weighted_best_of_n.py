"""Weighted best-of-N: verifier scores summed over the samples that reach the same answer;
the answer with the largest sum wins ("Making Large Language Models Better Reasoners with
Step-Aware Verifier", Li et al. 2023; "Let's Verify Step by Step", Lightman et al. 2023)."""

from __future__ import annotations

import math

from ponder.budget import Budget
from ponder.samplers.best_of_n import BestOfN
from ponder.samplers.population import group_by_answer, result


class WeightedBestOfN(BestOfN):
    def choose(self, cands, verifier, budget: Budget):
        key = verifier.name
        for c in cands:  # a sample the budget left unscored adds nothing
            c.scores[key] = c.scores[key] if math.isfinite(c.scores[key]) else 0.0
        groups = group_by_answer(cands, verifier)
        if not groups:
            return super().choose(cands, verifier, budget)
        win = max(groups, key=lambda g: g.weight(key))
        best = max(win.members, key=lambda c: c.scores[key])
        trace = [{"answer": g.answer, "weight": g.weight(key), "votes": len(g.members)} for g in groups]
        return result(win.answer, best.text, cands, budget, trace)
