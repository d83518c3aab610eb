"""The sizing rule: how big each strategy is made for a budget, so that a compute-matched grid
compares strategies that each spend about what the budget pays for (the budget, enforced, is
what stops them).

The rule (the one `benchmarks/search_gsm8k.py` used for the recorded GSM8K grid): a budget of B
generated-token equivalents pays for n = max(2, B // solution_tokens) whole solutions
(solution_tokens 400 by default: Qwen2.5-Coder-0.5B writes ~300 tokens on GSM8K, plus the PRM's
share). With more, parallel samples all stop part-way and none has an answer.

- greedy: one solution of at most max_new_tokens.
- self_consistency, best_of_n, weighted_best_of_n: n samples at sample_temperature.
- adaptive_consistency: at most n samples, rounds of min(4, n).
- particle_filter: min(n, max_particles) particles.
- beam_search, dvts: beam width 4 when n >= 8, else 2; n rounded down to a multiple of the width
  (at least one beam).
- astar: k = 4 children, 2 nodes a round, threshold 0.8, at most 4n expansions.
- mcts: k = 3 children, 4n simulations.
- step searches (the last five): steps of at most max_step_tokens, at most max_steps steps,
  sampled at step_temperature.

Only budgets in generated tokens or FLOPs (as token equivalents) are sized; with any other budget
key, and for a strategy the rule does not name, the strategy's YAML defaults stand. A user's own
per-cell settings (`cells.<strategy>.<key>=`, `cells.<strategy>.b<budget>.<key>=`) are applied
after the rule and win over it.
"""

from __future__ import annotations

from dataclasses import dataclass

STEP_SEARCHES = ("particle_filter", "beam_search", "dvts", "astar", "mcts")
SAMPLERS = ("self_consistency", "best_of_n", "weighted_best_of_n")


@dataclass(frozen=True)
class SizingRule:
    """What a budget pays for, per strategy (see the module docstring for the rule)."""

    solution_tokens: int = 400
    max_new_tokens: int = 512
    sample_temperature: float = 0.7
    max_particles: int = 16
    max_step_tokens: int = 160
    max_steps: int = 10
    step_temperature: float = 0.8

    def samples(self, budget: float) -> int:
        """Whole solutions a budget of `budget` generated-token equivalents pays for."""
        return max(2, int(budget) // self.solution_tokens)

    def settings(self, strategy: str, budget: float) -> dict:
        """Overrides of `strategy`'s YAML for a budget in generated-token equivalents ({} for a
        strategy the rule does not size)."""
        n = self.samples(budget)
        width = 4 if n >= 8 else 2
        step = dict(max_step_tokens=self.max_step_tokens, max_steps=self.max_steps, temperature=self.step_temperature)
        sized = {
            "greedy": dict(max_new_tokens=self.max_new_tokens),
            "adaptive_consistency": dict(
                n=n,
                batch=min(4, n),
                min_samples=min(4, n),
                temperature=self.sample_temperature,
                max_new_tokens=self.max_new_tokens,
            ),
            "particle_filter": dict(n=min(n, self.max_particles), **step),
            "beam_search": dict(n=max(width, n // width * width), beam_width=width, **step),
            "dvts": dict(n=max(width, n // width * width), beam_width=width, **step),
            "astar": dict(k=4, batch=2, threshold=0.8, max_expansions=4 * n, **step),
            "mcts": dict(k=3, simulations=4 * n, **step),
        }
        for name in SAMPLERS:
            sized[name] = dict(n=n, temperature=self.sample_temperature, max_new_tokens=self.max_new_tokens)
        return sized.get(strategy, {})
