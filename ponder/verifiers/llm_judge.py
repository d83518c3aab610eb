"""LLM-as-judge: any backend model asked whether a solution is correct; the score is
P("Yes") / (P("Yes") + P("No")) for its next token ("Judging LLM-as-a-Judge with MT-Bench
and Chatbot Arena", Zheng et al. 2023)."""

from __future__ import annotations

import math
from typing import Sequence

from ponder.budget import Budget
from ponder.types import Candidate
from ponder.verifiers.prm import StepScoring, check_aggregate

STEP_TEMPLATE = (
    "Here is a problem and the first steps of a proposed solution.\n\nProblem:\n{question}\n\n"
    "Steps so far:\n{previous}\n\nNew step:\n{step}\n\nIs the new step correct? Answer with one "
    "word, Yes or No."
)
TEMPLATE = (
    "Here is a problem and a proposed solution.\n\nProblem:\n{question}\n\nProposed solution:\n"
    "{solution}\n\nIs the proposed solution correct? Answer with one word, Yes or No."
)


class LLMJudge(StepScoring):
    """`model` is a LanguageModel, a model preset/path to load, or None to judge with the
    generator's own model (bound by the Generator). It is also a process reward model:
    `step_scores` asks, step by step, whether the new step is correct (one call per step),
    and whole-solution scores then aggregate them when `per_step` is set."""

    name = "llm_judge"

    def __init__(
        self,
        model=None,
        template: str = TEMPLATE,
        yes: str = "Yes",
        no: str = "No",
        step_template: str = STEP_TEMPLATE,
        per_step: bool = False,
        aggregate: str = "min",
        delimiter: str = "\n\n",
    ):
        if isinstance(model, str):
            from ponder.models import load_model

            model = load_model(model)
        self.model, self.template, self.yes, self.no = model, template, yes, no
        self.step_template, self.per_step, self.delimiter = step_template, per_step, delimiter
        self.aggregate = check_aggregate("verifier.aggregate", aggregate)

    def bind(self, model) -> None:
        if self.model is None:
            self.model = model

    def p_yes(self, question: str, budget: Budget) -> float:
        """P(Yes) / (P(Yes) + P(No)) as the next word after the judge's chat prompt; NaN when
        the budget cannot pay for the call."""
        if self.model is None:
            raise ValueError("LLMJudge has no model: pass one, or use it through a Generator")
        if budget.affordable_verifier_calls(1) < 1:
            return float("nan")
        budget.charge(verifier_calls=1)
        prompt = self.model.chat(question)
        lp_yes, lp_no = self.model.score([prompt, prompt], [self.yes, self.no], budget)
        if math.isinf(lp_yes) and math.isinf(lp_no):
            return float("nan")  # the budget ran out mid-judgement
        return 1.0 / (1.0 + math.exp(lp_no - lp_yes))

    def score(self, prompt: str, candidates: Sequence[Candidate], budget: Budget) -> list[float]:
        if self.per_step:
            return super().score(prompt, candidates, budget)
        return [self.p_yes(self.template.format(question=prompt, solution=c.text), budget) for c in candidates]

    def step_scores(
        self, question: str, solutions: Sequence[list[str]], budget: Budget, known: Sequence[list[float]] | None = None
    ) -> list[list[float]]:
        """P(Yes) for each step given the steps before it; `known[i]` holds scores already
        judged for the first steps of solution i (a search node's parent), reused as they are."""
        known = known or [[] for _ in solutions]
        return [
            list(done)
            + [
                self.p_yes(
                    self.step_template.format(
                        question=question, step=step, previous="\n\n".join(steps[:i]) or "(none)"
                    ),
                    budget,
                )
                for i, step in enumerate(steps)
                if i >= len(done)
            ]
            for steps, done in zip(solutions, known)
        ]
