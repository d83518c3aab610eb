"""Generator: one model + decoder + strategy + verifier + budget, called on a prompt."""
from __future__ import annotations

from typing import Sequence

from ponder.budget import Budget, Usage
from ponder.types import Result


class Generator:
    """`Generator(model, strategy, verifier, budget)` for programmatic use, or
    `Generator.from_overrides([...])` with exactly the overrides the `ponder` CLI takes.

    `budget` holds the limits applied to each call (keys of ponder.Budget); a call may pass
    its own Budget instead.
    """

    def __init__(self, model, strategy, verifier=None, budget: dict | None = None):
        from ponder.verifiers import MathVerifier

        self.model, self.strategy = model, strategy
        self.verifier = verifier if verifier is not None else MathVerifier()
        if hasattr(self.verifier, "bind"):
            self.verifier.bind(model)  # an LLM judge without a model of its own uses ours
        self.budget_limits = {k: v for k, v in (budget or {}).items() if v is not None}
        Budget(**self.budget_limits)  # bad limits fail now, not at the first prompt

    @classmethod
    def from_config(cls, cfg) -> "Generator":
        from ponder.config import instantiate

        decoder = instantiate(cfg.decoder, "decoder")
        model = instantiate(cfg.model, "model", decoder=decoder)
        return cls(model, instantiate(cfg.strategy, "strategy"), instantiate(cfg.verifier, "verifier"),
                   dict(cfg.budget))

    @classmethod
    def from_overrides(cls, overrides: Sequence[str] = ()) -> "Generator":
        from ponder.config import compose

        return cls.from_config(compose(overrides))

    def first_step(self, prompt: str) -> Usage:
        """What the cheapest useful step costs: prefilling the prompt, one token, one verifier call."""
        n = len(self.model.encode(self.model.chat(prompt)))
        return Usage(generated_tokens=1, prompt_tokens=n, forward_passes=1,
                     flops=self.model.shape.forward_flops(n, 0),
                     verifier_calls=int(getattr(self.strategy, "uses_verifier", False)))

    def __call__(self, prompt: str, budget: Budget | None = None) -> Result:
        budget = budget if budget is not None else Budget(**self.budget_limits)
        budget.require(self.first_step(prompt), f"strategy {type(self.strategy).__name__}")
        budget.start()
        return self.strategy.run(self.model, prompt, self.verifier, budget)
