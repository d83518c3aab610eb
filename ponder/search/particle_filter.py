"""Particle filtering over steps ("A Probabilistic Inference Approach to Inference-Time Scaling
of LLMs using Particle-Based Monte Carlo Methods", Puri et al. 2025).

n particles grow one step at a time. After every step each particle's weight is the softmax,
at `weight_temperature`, of its PRM value's logit log(r / (1 - r)) (by default r is the score
of its latest step): at temperature 1 a particle's weight is proportional to its odds r / (1 - r),
as in the authors' implementation (its_hub); `weight_from: score` takes the softmax of r
itself instead, a much flatter weighting (a score of 0.9 against 0.1 is 2.2 to 1 rather than 81
to 1). The n particles are then resampled from those weights (multinomial or systematic), so
promising partial solutions multiply and poor ones die out. Finished particles keep their weight and are
resampled with the rest. The answer is the heaviest particle's (`answer: best`) or the answer
with the largest total weight (`answer: vote`).

`gibbs_iterations` > 0 adds particle Gibbs (the paper's iterated variant): each further
filter keeps the previous filter's best finished particle as a reference trajectory that
always survives resampling, while the other n - 1 particles are drawn afresh.
"""

from __future__ import annotations

import torch

from ponder.budget import Budget
from ponder.errors import ConfigError, check_number
from ponder.search.steps import Node, Stepper, node_result
from ponder.verifiers.prm import check_aggregate


def resample(weights: torch.Tensor, n: int, how: str, generator: torch.Generator) -> list[int]:
    if how == "multinomial":
        return torch.multinomial(weights, n, replacement=True, generator=generator).tolist()
    # systematic: one uniform offset, n evenly spaced pointers into the cumulative weights
    u = (torch.rand((), generator=generator, dtype=torch.float64) + torch.arange(n, dtype=torch.float64)) / n
    return torch.searchsorted(weights.double().cumsum(0), u).clamp_max(len(weights) - 1).tolist()


class ParticleFilter:
    uses_verifier = True

    def __init__(
        self,
        n: int = 8,
        weight_temperature: float = 1.0,
        resampling: str = "systematic",
        answer: str = "best",
        score: str = "last",
        gibbs_iterations: int = 0,
        weight_from: str = "logit",
        **step,
    ):
        self.n = check_number("strategy.n", n, minimum=1, integer=True)
        self.gibbs_iterations = check_number("strategy.gibbs_iterations", gibbs_iterations, minimum=0, integer=True)
        if gibbs_iterations and n < 2:
            raise ConfigError("particle Gibbs needs strategy.n >= 2 (one particle follows the reference)")
        self.temp = check_number("strategy.weight_temperature", weight_temperature, minimum=1e-6)
        if resampling not in ("multinomial", "systematic"):
            raise ConfigError(f"strategy.resampling must be multinomial or systematic; got {resampling!r}")
        if answer not in ("best", "vote"):
            raise ConfigError(f"strategy.answer must be best or vote; got {answer!r}")
        if weight_from not in ("logit", "score"):
            raise ConfigError(f"strategy.weight_from must be logit or score; got {weight_from!r}")
        self.resampling, self.answer, self.weight_from, self.step = resampling, answer, weight_from, step
        self.how = check_aggregate("strategy.score", score)
        Stepper(**step)

    def weights(self, particles: list[Node]) -> torch.Tensor:
        values = torch.tensor([p.value(self.how) for p in particles], dtype=torch.float64)  # [particles]
        if self.weight_from == "logit":  # -inf (unscored) stays -inf
            values = torch.where(torch.isinf(values), values, torch.logit(values.clamp(0, 1), eps=1e-7))
        if torch.isinf(values).all():
            return torch.full((len(particles),), 1.0 / len(particles), dtype=torch.float64)
        return torch.softmax(values / self.temp, 0)

    def run(self, model, prompt: str, verifier, budget: Budget):
        stepper = Stepper(**self.step)
        g = torch.Generator().manual_seed(stepper.seed or 0)
        particles, trace = self.filter(model, prompt, verifier, budget, stepper, g, None)
        for it in range(self.gibbs_iterations):
            if budget.exhausted or not particles:
                break
            finished = [p for p in particles if p.done] or particles
            reference = finished[int(self.weights(finished).argmax())]
            particles, more = self.filter(model, prompt, verifier, budget, stepper, g, reference)
            trace += [{"gibbs_iteration": it + 1, **t} for t in more]
        if self.answer == "vote" and particles:
            return self.vote(particles, stepper, verifier, budget, trace)
        return node_result(particles, stepper, verifier, budget, self.how, trace)

    def filter(self, model, prompt, verifier, budget, stepper, g, reference: Node | None):
        """One particle filter. With a reference trajectory (particle Gibbs, conditional SMC)
        the last particle follows the reference step by step and always survives resampling,
        the other n - 1 are resampled from the weights of all n."""
        fresh = self.n - (reference is not None)

        def ref_at(t: int) -> Node:
            steps = reference.steps[: t + 1]
            return Node(
                steps,
                reference.scores[: t + 1],
                len(steps) == len(reference.steps),
                reference.tokens,
                reference.logprob,
                reference.answer if len(steps) == len(reference.steps) else None,
            )

        particles = stepper.expand(model, prompt, [Node()], fresh, verifier, budget)[0] if fresh else []
        stepper.score(verifier, prompt, particles, budget)
        if reference is not None:
            particles.append(ref_at(0))
        trace, t = [], 0
        while particles and not budget.exhausted:
            w = self.weights(particles)
            picked = resample(w, fresh, self.resampling, g)
            ref = particles[-1] if reference is not None else None
            particles = [particles[i] for i in picked] + ([ref] if ref is not None else [])
            trace.append(
                {
                    "round": stepper.round,
                    "ess": float(1.0 / (w**2).sum()),
                    "unique_parents": len(set(picked)),
                    "finished": sum(p.done for p in particles),
                }
            )
            live = [i for i, p in enumerate(particles[:fresh]) if not p.done]
            if not live and (ref is None or ref.done):
                break
            kids = stepper.expand(model, prompt, [particles[i] for i in live], 1, verifier, budget) if live else []
            grown = [(i, k[0]) for i, k in zip(live, kids) if k]
            stepper.score(verifier, prompt, [c for _, c in grown], budget)
            for i, child in grown:
                particles[i] = child
            t += 1
            if ref is not None and not ref.done:
                particles[-1] = ref_at(t)
        return particles, trace

    def vote(self, particles, stepper, verifier, budget, trace):
        """The answer with the largest total weight among finished particles."""
        from ponder.samplers.population import result
        from ponder.types import Candidate

        done = [p for p in particles if p.done] or particles
        w = self.weights(done).tolist()
        same = verifier.same_answer
        totals: list[list] = []  # [answer, weight, best particle]
        for p, wi in zip(done, w):
            if p.answer is None:
                continue
            group = next((t for t in totals if same(t[0], p.answer)), None)
            if group is None:
                totals.append([p.answer, wi, p])
            else:
                group[1] += wi
                group[2] = max(group[2], p, key=lambda q: q.value(self.how))
        if not totals:
            return node_result(particles, stepper, verifier, budget, self.how, trace)
        answer, _, best = max(totals, key=lambda t: t[1])
        cands = [
            Candidate(stepper.text(p), p.answer, None, {"prm": p.value(self.how), "weight": wi})
            for p, wi in zip(done, w)
        ]
        return result(answer, stepper.text(best), cands, budget, trace)
