"""Beam search, DVTS and particle filtering on a scripted step model with a table PRM (where
the right path is known), then on a real tiny backend."""

import math

import pytest

from fakes import tiny_model
from ponder.budget import Budget
from ponder.errors import ConfigError
from ponder.search import DVTS, MCTS, AStar, BeamSearch, ParticleFilter
from ponder.search.mcts import priors
from ponder.search.particle_filter import resample
from ponder.search.steps import Node
from ponder.types import Completion
from ponder.verifiers import LLMJudge, MathVerifier

Q = "Tom has 3 apples and buys 4 more. How many?"


class StepModel:
    """Each call with n samples: sample 0 is the good next step, the others bad ones. A third
    step ends the solution (no delimiter): 7 after good steps only, else 3."""

    def __init__(self):
        self.prompts = []

    def chat(self, user):
        return user

    def generate(self, prompts, params, budget):
        out = []
        for prompt in prompts:
            self.prompts.append(prompt)
            steps = [s for s in prompt[len(Q) :].split("\n\n") if s]
            row = []
            for i in range(params.n):
                if budget.affordable_rows(1, 0.0, forward=False) < 1:
                    row.append(Completion("", [], [], "budget"))
                    continue
                budget.charge(generated_tokens=3)
                good = i == 0 and all(s.startswith("good") for s in steps)
                if len(steps) == 2:
                    row.append(Completion(f"The answer is {7 if good else 3}.", [1, 2, 3], [-1.0] * 3, "stop"))
                else:
                    row.append(
                        Completion(
                            f"good {len(steps)}" if i == 0 else f"bad {i}",
                            [1, 2, 3],
                            [-1.0] * 3,
                            "stop",
                            stop_string="\n\n",
                        )
                    )
            out.append(row)
        return out


class TablePRM(MathVerifier):
    name = "prm"
    scores_steps = True
    needs_model = True

    def __init__(self):
        self.calls = 0

    def step_scores(self, question, solutions, budget, known=None):
        self.calls += len(solutions)
        budget.charge(verifier_calls=len(solutions))
        return [[0.9 if s.startswith("good") or "is 7" in s else 0.1 for s in steps] for steps in solutions]


@pytest.mark.parametrize(
    "strategy",
    [
        BeamSearch(n=8, beam_width=4),
        DVTS(n=8, beam_width=4),
        ParticleFilter(n=8, weight_temperature=0.1),
        ParticleFilter(n=8, weight_temperature=0.1, resampling="multinomial", answer="vote"),
        ParticleFilter(n=4, weight_temperature=0.1, gibbs_iterations=2),
        AStar(k=4, batch=1, threshold=0.8),
        MCTS(k=4, simulations=12),
        MCTS(k=4, simulations=12, rollout=True),
    ],
)
def test_search_follows_the_prm_to_the_right_answer(strategy):
    model, prm, budget = StepModel(), TablePRM(), Budget()
    res = strategy.run(model, Q, prm, budget)
    assert res.answer == "7" and res.text == "good 0\n\ngood 1\n\nThe answer is 7."
    assert budget.usage.verifier_calls == prm.calls > 0 and res.trace


def test_beam_and_dvts_spend_n_children_per_round():
    for strategy, first in ((BeamSearch(n=8, beam_width=4), 1), (DVTS(n=8, beam_width=4), 2)):
        model = StepModel()
        strategy.run(model, Q, TablePRM(), Budget())
        assert model.prompts[:first] == [Q] * first  # DVTS starts n / beam_width subtrees
        assert len(model.prompts) == first + 2 + 2  # then n / beam_width beams per round


def test_search_stops_at_the_budget_with_its_best_so_far():
    res = BeamSearch(n=8, beam_width=4).run(StepModel(), Q, TablePRM(), Budget(max_generated_tokens=30))
    assert res.budget_exhausted and res.usage.generated_tokens <= 30
    assert res.text.startswith("good 0")  # the best partial solution, not nothing


class CutModel:
    """One expansion of the question: sample 0 is a whole solution that ends at EOS (answer 7),
    the others are cut off by the budget part-way through a step that reads as answer 3."""

    def chat(self, user):
        return user

    def generate(self, prompts, params, budget):
        budget.exhausted = True  # the budget refused the rest of the cut rows
        return [
            [Completion("The answer is 7.", [1, 2, 3], [-1.0] * 3, "stop")]
            + [Completion("The answer is 3", [1, 2], [-1.0] * 2, "budget") for _ in range(params.n - 1)]
            for _ in prompts
        ]


class CutFavouringPRM(TablePRM):
    def step_scores(self, question, solutions, budget, known=None):
        return [[0.95 if "is 3" in s else 0.6 for s in steps] for steps in solutions]


@pytest.mark.parametrize(
    "strategy",
    [
        BeamSearch(n=4, beam_width=2),
        DVTS(n=4, beam_width=2),
        ParticleFilter(n=4),
        AStar(k=4, batch=1),
        MCTS(k=4, simulations=4),
    ],
)
def test_a_step_the_budget_cut_is_not_a_finished_solution(strategy):
    # the PRM prefers the cut text; the answer must still be the one solution that finished
    res = strategy.run(CutModel(), Q, CutFavouringPRM(), Budget())
    assert res.budget_exhausted and res.answer == "7" and res.text == "The answer is 7."


def test_search_needs_a_step_verifier_and_sane_settings():
    with pytest.raises(ConfigError, match="process reward model"):
        BeamSearch(n=4, beam_width=2).run(StepModel(), Q, MathVerifier(), Budget())
    with pytest.raises(ConfigError, match="multiple of"):
        BeamSearch(n=6, beam_width=4)
    with pytest.raises(ConfigError, match="resampling"):
        ParticleFilter(resampling="stratified")


def test_systematic_and_multinomial_resampling_follow_the_weights():
    import torch

    w = torch.tensor([0.5, 0.25, 0.25, 0.0], dtype=torch.float64)
    assert sorted(resample(w, 4, "systematic", torch.Generator().manual_seed(0))) in ([0, 0, 1, 2], [0, 0, 1, 2])
    picks = resample(w, 4000, "multinomial", torch.Generator().manual_seed(0))
    assert 3 not in picks and abs(picks.count(0) / 4000 - 0.5) < 0.03


def test_particle_weights_are_the_odds_of_the_prm_value_or_a_softmax_of_it():
    particles = [Node(["a"], [0.9]), Node(["b"], [0.5]), Node(["c"], [float("nan")])]
    odds = ParticleFilter(n=3).weights(particles)  # 9 : 1 : 0 (unscored)
    assert odds.tolist() == pytest.approx([0.9, 0.1, 0.0])
    sharper = ParticleFilter(n=3, weight_temperature=0.5).weights(particles)  # 81 : 1
    assert sharper.tolist() == pytest.approx([81 / 82, 1 / 82, 0.0])
    flat = ParticleFilter(n=3, weight_from="score").weights(particles)
    assert flat.tolist() == pytest.approx([math.exp(0.4) / (math.exp(0.4) + 1), 1 / (math.exp(0.4) + 1), 0.0])
    with pytest.raises(ConfigError, match="weight_from"):
        ParticleFilter(weight_from="odds")


def test_search_on_a_real_backend_reuses_the_shared_prefix():
    model = tiny_model(0)
    search = BeamSearch(n=4, beam_width=2, max_steps=3, max_step_tokens=8, temperature=1.0, delimiter=" ")
    budget = Budget()
    res = search.run(model, "Solve step by step. 2 + 2 =", TablePRM(), budget)
    assert res.candidates and budget.usage.generated_tokens > 0
    assert budget.usage.cached_prompt_tokens > 0  # expansions extend prefixes already computed
    pf = ParticleFilter(n=3, max_steps=2, max_step_tokens=6, delimiter=" ")
    res = pf.run(model, "2 + 2 =", LLMJudge(model), Budget())
    assert res.usage.verifier_calls > 0 and len(res.candidates) == 3


def test_astar_stops_at_the_first_good_terminal():
    model = StepModel()
    res = AStar(k=4, batch=1, threshold=0.8).run(model, Q, TablePRM(), Budget())
    assert res.answer == "7" and len(model.prompts) == 3  # root, good 0, good 1: nothing else expanded


def test_search_runs_on_a_speculative_decoder_with_the_same_greedy_result():
    from fakes import tiny_network, tiny_tokenizer
    from ponder.models.hf import HFModel
    from ponder.speculative import early_exit, ngram

    search = BeamSearch(n=2, beam_width=1, max_steps=3, max_step_tokens=8, temperature=0.0, delimiter=" ")
    q = "Solve step by step. 2 + 2 ="
    plain = search.run(HFModel(tiny_network(0), tiny_tokenizer()), q, TablePRM(), Budget())
    for dec in (ngram(num_tokens=3), early_exit(exit_layer=1, num_tokens=2)):
        fast = search.run(HFModel(tiny_network(0), tiny_tokenizer(), decoder=dec), q, TablePRM(), Budget())
        assert fast.text == plain.text and [c.text for c in fast.candidates] == [c.text for c in plain.candidates]
        assert dec.stats["row_steps"] > 0


def test_search_strategies_compose_from_config(tiny_folder):
    from ponder import Generator

    gen = Generator.from_overrides(
        [
            f"model.path={tiny_folder}",
            "strategy=particle_filter",
            "strategy.n=2",
            "strategy.max_steps=2",
            "strategy.max_step_tokens=6",
            "verifier=llm_judge",
            "budget.max_generated_tokens=40",
        ]
    )
    res = gen("2 + 2 =")
    assert res.usage.generated_tokens <= 40 and res.usage.verifier_calls > 0
    for name in ("beam_search", "dvts", "astar", "mcts"):
        Generator.from_overrides([f"model.path={tiny_folder}", f"strategy={name}", "verifier=llm_judge"])


def test_particle_gibbs_keeps_the_reference_and_spends_more():
    model, budget = StepModel(), Budget()
    one = ParticleFilter(n=4, weight_temperature=0.1).run(StepModel(), Q, TablePRM(), Budget())
    res = ParticleFilter(n=4, weight_temperature=0.1, gibbs_iterations=1).run(model, Q, TablePRM(), budget)
    assert res.answer == "7" and any("gibbs_iteration" in t for t in res.trace)
    assert budget.usage.generated_tokens > one.usage.generated_tokens
    assert model.prompts.count(Q) == 2  # a second filter started from the question, the reference kept


def test_mcts_priors_use_only_the_new_steps_log_probabilities():
    parent = Node(["a"], tokens=10, logprob=-20.0)
    # new steps: 2 tokens at mean -1.0 and 8 tokens at mean -0.5
    kids = [Node(["a", "b"], tokens=12, logprob=-22.0), Node(["a", "c"], tokens=18, logprob=-24.0)]
    z = math.exp(-1.0) + math.exp(-0.5)
    want = [math.exp(-1.0) / z, math.exp(-0.5) / z]
    assert priors(parent, kids) == pytest.approx(want)
