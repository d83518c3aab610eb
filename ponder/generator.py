"""Generator: one model + decoder + strategy + verifier + budget, called on a prompt."""

from __future__ import annotations

from typing import Iterator, Sequence

from ponder.budget import Budget, Usage, budget_from
from ponder.errors import ConfigError, PromptError, check_number
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
        self.verifier.bind(model)  # an LLM judge without a model of its own uses ours
        if budget is not None and not isinstance(budget, dict):
            raise ConfigError(f"Generator(budget=...) takes a dict of limits, got {type(budget).__name__}")
        self.budget_limits = {k: v for k, v in (budget or {}).items() if v is not None}
        budget_from(self.budget_limits)  # bad limits fail now, not at the first prompt

    @classmethod
    def from_config(cls, cfg) -> "Generator":
        from ponder.config import instantiate, resolved

        # everything that needs no model is checked first: a typo costs no model load
        strategy = instantiate(cfg.strategy, "strategy")
        limits = resolved(cfg.budget, "budget")
        budget_from({k: v for k, v in limits.items() if v is not None})
        decoder = instantiate(cfg.decoder, "decoder")
        model = instantiate(cfg.model, "model", decoder=decoder)
        return cls(model, strategy, instantiate(cfg.verifier, "verifier"), limits)

    @classmethod
    def from_overrides(cls, overrides: Sequence[str] = ()) -> "Generator":
        from ponder.config import compose

        if isinstance(overrides, str):
            raise ConfigError(
                f"from_overrides takes a list of overrides, got the string {overrides!r}; write [{overrides!r}]"
            )
        return cls.from_config(compose(overrides))

    def first_step(self, prompt: str) -> Usage:
        """What the cheapest useful step costs: prefilling the prompt, one token, one verifier call.
        A prompt that is not text, or longer than the model's context, is refused (PromptError)."""
        if not isinstance(prompt, str):
            raise PromptError(f"a prompt must be a str, got {type(prompt).__name__} {prompt!r:.60}")
        n = len(self.model.encode(self.model.chat(prompt)))
        context = self.model.shape.context
        if context is not None and n >= context:
            raise PromptError(
                f"the prompt is {n} tokens with its chat template; {self.model.name} takes at most {context} "
                f"(prompt and answer together): shorten the prompt"
            )
        return Usage(
            generated_tokens=1,
            prompt_tokens=n,
            forward_passes=1,
            flops=self.model.shape.forward_flops(n, 0),
            verifier_calls=int(self.strategy.uses_verifier),
        )

    def budget_for(self, prompt: str, budget: Budget | None = None) -> Budget:
        """A fresh budget of this generator's limits (or `budget`), refused now if it cannot pay
        for the first step on `prompt`."""
        budget = budget if budget is not None else Budget(**self.budget_limits)
        budget.require(self.first_step(prompt), f"strategy {type(self.strategy).__name__}")
        return budget

    def __call__(self, prompt: str, budget: Budget | None = None) -> Result:
        budget = self.budget_for(prompt, budget).start()
        return self.strategy.run(self.model, prompt, self.verifier, budget)

    def run_many(self, prompts: Sequence[str], together: int = 1) -> Iterator[tuple[int, Result | Exception]]:
        """Every prompt, each under its own budget, up to `together` at a time with their model
        calls batched (`ponder.together`); yields (index, Result) as each finishes, or
        (index, the exception its strategy raised) so one failure need not stop the rest."""
        from ponder.together import run_together

        check_number("together", together, minimum=1, integer=True)
        if isinstance(prompts, (str, bytes)):
            raise ConfigError("run_many takes a list of prompts, got one string; use gen(prompt) for one")
        prompts = list(prompts)
        return run_together(
            self.model, self.verifier, self.strategy, prompts, lambda i: self.budget_for(prompts[i]), together
        )
