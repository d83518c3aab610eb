"""Monte Carlo tree search over steps. Each simulation selects a path from the root by PUCT
(Q + c_puct * prior * sqrt(N_parent) / (1 + N)), expands the leaf into k sampled next steps
(priors from the steps' mean token log-probabilities), evaluates each new child by its PRM
value and, with `rollout`, also by completing the solution from it and scoring the result,
then backs the values up the path. Returns the best finished solution by PRM value."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ponder.budget import Budget
from ponder.errors import check_number
from ponder.search.steps import Node, Stepper, node_result
from ponder.types import SamplingParams
from ponder.verifiers.prm import check_aggregate


def priors(parent: Node, kids: list[Node]) -> list[float]:
    """A softmax over the kids' new steps' mean token log-probabilities (the parent's path is
    taken off: it is shared, and dividing it by each step's length would favour long steps)."""
    means = [(c.logprob - parent.logprob) / max(c.tokens - parent.tokens, 1) for c in kids]
    top = max(means)
    weights = [math.exp(m - top) for m in means]
    return [w / sum(weights) for w in weights]


@dataclass
class TreeNode:
    node: Node
    prior: float = 1.0
    visits: int = 0
    total: float = 0.0
    children: list["TreeNode"] = field(default_factory=list)

    @property
    def q(self) -> float:
        return self.total / self.visits if self.visits else 0.0


class MCTS:
    uses_verifier = True

    def __init__(
        self, k: int = 3, simulations: int = 16, c_puct: float = 1.0, rollout: bool = False, score: str = "last", **step
    ):
        self.k = check_number("strategy.k", k, minimum=1, integer=True)
        self.simulations = check_number("strategy.simulations", simulations, minimum=1, integer=True)
        self.c = check_number("strategy.c_puct", c_puct, minimum=0)
        self.rollout, self.how, self.step = rollout, check_aggregate("strategy.score", score), step
        Stepper(**step)

    def select(self, parent: TreeNode) -> TreeNode:
        root_n = math.sqrt(max(parent.visits, 1))
        return max(parent.children, key=lambda ch: ch.q + self.c * ch.prior * root_n / (1 + ch.visits))

    def evaluate(self, model, prompt, stepper, verifier, budget, child: Node) -> float:
        value = max(child.value(self.how), 0.0)
        if not self.rollout or child.done:
            return value
        params = SamplingParams(n=1, temperature=0.0, max_new_tokens=stepper.max_step_tokens * stepper.max_steps)
        comp = model.generate([stepper.prompt(model, prompt, child)], params, budget)[0][0]
        full = Node(child.steps + [s for s in comp.text.split(stepper.delimiter) if s.strip()])
        stepper.score(verifier, prompt, [full], budget)
        return 0.5 * value + 0.5 * max(full.value(self.how), 0.0)

    def run(self, model, prompt: str, verifier, budget: Budget):
        stepper = Stepper(**self.step)
        root, finished, trace = TreeNode(Node()), [], []
        for sim in range(self.simulations):
            if budget.exhausted:
                break
            path = [root]
            while path[-1].children and not path[-1].node.done:
                path.append(self.select(path[-1]))
            leaf = path[-1]
            if leaf.node.done:
                value = max(leaf.node.value(self.how), 0.0)
            else:
                kids = stepper.expand(model, prompt, [leaf.node], self.k, verifier, budget)[0]
                if not kids:
                    break
                stepper.score(verifier, prompt, kids, budget)
                finished += [c for c in kids if c.done]
                values = [self.evaluate(model, prompt, stepper, verifier, budget, c) for c in kids]
                leaf.children = [TreeNode(c, p, 1, v) for c, p, v in zip(kids, priors(leaf.node, kids), values)]
                value = max(values)
            for t in path:
                t.visits += 1
                t.total += value
            trace.append({"simulation": sim, "depth": len(path) - 1, "value": value, "finished": len(finished)})
        if not finished:  # the most visited path's deepest node
            t = root
            while t.children:
                t = max(t.children, key=lambda ch: ch.visits)
            finished = [t.node] if t is not root else []
        return node_result(finished, stepper, verifier, budget, self.how, trace)
