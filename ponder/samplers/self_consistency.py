"""Self-consistency: the majority answer over n sampled solutions, ties broken by the mean
token log-probability of each answer's samples ("Self-Consistency Improves Chain of Thought
Reasoning in Language Models", Wang et al. 2023)."""

from __future__ import annotations

import re
from collections import Counter

from ponder.budget import Budget
from ponder.errors import check_number
from ponder.samplers.population import AnswerGroup, Sampling, group_by_answer, result


def majority(groups: list[AnswerGroup]) -> AnswerGroup:
    return max(groups, key=lambda g: (len(g.members), g.mean_logprob))


def repetitive(text: str, times: int = 3) -> bool:
    """Degenerate text: some sentence or line of 10+ characters stated `times` times or more
    (small models loop: "Tom has 3 + 5 = 8 apples." five times over)."""
    pieces = [p.strip() for p in re.split(r"(?<=[.!?])\s+|\n+", text) if len(p.strip()) >= 10]
    return any(n >= times for n in Counter(pieces).values())


def shown_text_key(c):
    """Which of the winning answer's candidates a user sees: a finished one (it stopped by
    itself, not at the length or budget limit), then one that does not repeat itself, then
    the most confident. The answer, and so accuracy, is the same whichever is shown; mean
    log-probability alone favoured repetitive text on small models."""
    return (c.completion.finish_reason == "stop", not repetitive(c.text), c.completion.mean_logprob)


def vote_result(cands, groups, verifier, budget, trace):
    if not groups:  # nobody stated an answer: the most confident text, no answer
        best = max(cands, key=lambda c: c.completion.mean_logprob, default=None)
        return result(None, best.text if best else "", cands, budget, trace)
    win = majority(groups)
    best = max(win.members, key=shown_text_key)
    for g in groups:
        for c in g.members:
            c.scores["votes"] = float(len(g.members))
    return result(win.answer, best.text, cands, budget, trace)


class SelfConsistency:
    uses_verifier = False

    def __init__(self, n: int = 8, **sampling):
        self.n = check_number("strategy.n", n, minimum=1, integer=True)
        self.sampling = Sampling(**sampling)

    def run(self, model, prompt: str, verifier, budget: Budget):
        cands = self.sampling.draw(model, prompt, verifier, budget, self.n)
        groups = group_by_answer(cands, verifier)
        trace = [{"answer": g.answer, "votes": len(g.members), "mean_logprob": g.mean_logprob} for g in groups]
        return vote_result(cands, groups, verifier, budget, trace)
