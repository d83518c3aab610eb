"""Partial solutions as lists of steps, and asking the backend for the next step of many of
them at once. One representation serves every search strategy.

A step ends at the delimiter (default a blank line); a solution ends at EOS, at the step
length limit, or after `max_steps`. A step the budget cut off ends nothing: its node stays
unfinished, so a search answers with a finished solution whenever it has one. The prompt of a
partial solution is the chat prompt plus the steps so far, so the backend's prefix cache
serves the shared prefix of every expansion.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ponder.budget import Budget
from ponder.errors import ConfigError, check_number, check_seed
from ponder.types import SamplingParams
from ponder.verifiers.prm import aggregate_scores


@dataclass
class Node:
    steps: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)  # the PRM's score of every step
    done: bool = False
    tokens: int = 0  # generated tokens along the path
    logprob: float = 0.0  # sum of token log-probabilities along the path
    answer: str | None = None

    def value(self, how: str) -> float:
        """The node's PRM value: its step scores aggregated (-inf when unscored or NaN)."""
        if not self.scores or any(s != s for s in self.scores):
            return float("-inf")
        return aggregate_scores(self.scores, how)


@dataclass
class Stepper:
    delimiter: str = "\n\n"
    max_step_tokens: int = 256
    max_steps: int = 16
    temperature: float = 0.8
    top_p: float = 1.0
    seed: int | None = 0

    def __post_init__(self):
        if not self.delimiter:
            raise ConfigError("strategy.delimiter must be a non-empty string (the text between steps)")
        check_number("strategy.max_step_tokens", self.max_step_tokens, minimum=1, integer=True)
        check_number("strategy.max_steps", self.max_steps, minimum=1, integer=True)
        check_number("strategy.temperature", self.temperature, minimum=0)
        check_number("strategy.top_p", self.top_p, minimum=1e-6, maximum=1)
        check_seed("strategy.seed", self.seed)
        self.round = 0

    def text(self, node: Node) -> str:
        return self.delimiter.join(node.steps)

    def prompt(self, model, question: str, node: Node) -> str:
        return model.chat(question) + (self.text(node) + self.delimiter if node.steps else "")

    def expand(self, model, question: str, nodes: list[Node], k: int, verifier, budget: Budget) -> list[list[Node]]:
        """k sampled next steps for each node, in one backend call; children the budget cut off
        before their first token are dropped."""
        params = SamplingParams(
            n=k,
            temperature=self.temperature,
            top_p=self.top_p,
            stop=(self.delimiter,),
            max_new_tokens=self.max_step_tokens,
            seed=None if self.seed is None else self.seed + self.round,
            extends=True,
        )
        self.round += 1
        outs = model.generate([self.prompt(model, question, n) for n in nodes], params, budget)
        children = []
        for node, comps in zip(nodes, outs):
            kids = []
            for c in comps:
                if c.cut_before_start:
                    continue
                steps = node.steps + [c.text.strip()]
                # a step the budget cut off is unfinished text, not a solution that ended
                done = c.finish_reason != "budget" and (c.stop_string is None or len(steps) >= self.max_steps)
                kids.append(
                    Node(
                        steps,
                        list(node.scores),
                        done,
                        node.tokens + len(c.token_ids),
                        node.logprob + sum(c.logprobs),
                        verifier.extract_answer(c.text) if done else None,
                    )
                )
            children.append(kids)
        return children

    @staticmethod
    def score(verifier, question: str, nodes: list[Node], budget: Budget) -> None:
        """Record the PRM's step scores on each node (one call per node)."""
        if not verifier.scores_steps:
            raise ConfigError(
                f"this search strategy needs a process reward model (verifier=prm or llm_judge); "
                f"verifier {getattr(verifier, 'name', verifier)!r} scores whole solutions only"
            )
        known = [n.scores[: len(n.steps) - 1] for n in nodes]  # the parent's steps were scored already
        for node, scores in zip(nodes, verifier.step_scores(question, [n.steps for n in nodes], budget, known)):
            node.scores = scores


def node_result(nodes: list[Node], stepper: Stepper, verifier, budget: Budget, how: str, trace):
    """The best finished node by PRM value (the best unfinished one if none finished)."""
    from ponder.samplers.population import result
    from ponder.types import Candidate, Completion

    finished = [n for n in nodes if n.done] or nodes
    cands = [
        Candidate(
            stepper.text(n),
            n.answer if n.done else verifier.extract_answer(stepper.text(n)),
            Completion(stepper.text(n), [], [], "stop" if n.done else "length"),
            {"prm": n.value(how), "steps": float(len(n.steps))},
        )
        for n in finished
    ]
    if not cands:
        return result(None, "", [], budget, trace)
    best = max(cands, key=lambda c: c.scores["prm"])
    return result(best.answer, best.text, cands, budget, trace)
