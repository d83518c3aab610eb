"""Best-first search over steps in the spirit of "A*-Decoding" (2025): a priority queue of
partial solutions ordered by a PRM-derived cost, cost = -value + depth_penalty * steps, where
value aggregates the PRM's step scores. Each round pops the `batch` cheapest nodes and expands
them together (k next steps each); it stops at the first finished solution whose value clears
`threshold`, or when the queue, `max_expansions` or the budget runs out, returning the best
finished solution (or the best partial one)."""

from __future__ import annotations

import heapq
import itertools

from ponder.budget import Budget
from ponder.errors import check_number
from ponder.search.steps import Node, Stepper, node_result
from ponder.verifiers.prm import check_aggregate


class AStar:
    uses_verifier = True

    def __init__(
        self,
        k: int = 4,
        batch: int = 2,
        threshold: float = 0.8,
        max_expansions: int = 64,
        depth_penalty: float = 0.0,
        score: str = "min",
        **step,
    ):
        self.k = check_number("strategy.k", k, minimum=1, integer=True)
        self.batch = check_number("strategy.batch", batch, minimum=1, integer=True)
        self.threshold = check_number("strategy.threshold", threshold)
        self.max_expansions = check_number("strategy.max_expansions", max_expansions, minimum=1, integer=True)
        self.depth_penalty = check_number("strategy.depth_penalty", depth_penalty, minimum=0)
        self.how, self.step = check_aggregate("strategy.score", score), step
        Stepper(**step)

    def cost(self, node: Node) -> float:
        return -node.value(self.how) + self.depth_penalty * len(node.steps)

    def run(self, model, prompt: str, verifier, budget: Budget):
        stepper = Stepper(**self.step)
        order = itertools.count()
        queue = [(0.0, next(order), Node())]
        finished, frontier_best, trace, expansions = [], [], [], 0
        while queue and expansions < self.max_expansions and not budget.exhausted:
            popped = [heapq.heappop(queue)[2] for _ in range(min(self.batch, len(queue)))]
            expansions += len(popped)
            new = [c for g in stepper.expand(model, prompt, popped, self.k, verifier, budget) for c in g]
            stepper.score(verifier, prompt, new, budget)
            goal = None
            for c in new:
                if c.done:
                    finished.append(c)
                    value = c.value(self.how)
                    if value >= self.threshold and (goal is None or value > goal.value(self.how)):
                        goal = c
                else:
                    heapq.heappush(queue, (self.cost(c), next(order), c))
            frontier_best = [queue[0][2]] if queue else frontier_best
            trace.append(
                {
                    "round": stepper.round,
                    "popped": len(popped),
                    "queue": len(queue),
                    "finished": len(finished),
                    "goal": goal is not None,
                }
            )
            if goal is not None:
                return node_result([goal], stepper, verifier, budget, self.how, trace)
        return node_result(finished or frontier_best, stepper, verifier, budget, self.how, trace)
