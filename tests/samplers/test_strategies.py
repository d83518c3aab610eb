import pytest

from fakes import ScriptedModel, TableVerifier, tiny_model
from ponder import Budget
from ponder.errors import ConfigError
from ponder.samplers import AdaptiveConsistency, BestOfN, Greedy, SelfConsistency, WeightedBestOfN
from ponder.verifiers import MathVerifier

A, B, C = "so the answer is 8", "the answer is 9", "The answer is 10"


def test_self_consistency_takes_the_majority():
    model = ScriptedModel([A, B, "#### 8", C, "\\boxed{8}"])
    res = SelfConsistency(n=5).run(model, "q", MathVerifier(), Budget())
    assert res.answer == "8" and len(res.candidates) == 5
    assert {t["answer"]: t["votes"] for t in res.trace} == {"8": 3, "9": 1, "10": 1}


def test_self_consistency_merges_equivalent_answers():
    model = ScriptedModel(["\\boxed{\\frac{1}{2}}", "\\boxed{0.5}", "\\boxed{3}", "\\boxed{3}"], [-1, -1, -2, -2])
    # 1/2 and 0.5 are one answer: 2 votes each, tie broken by mean logprob (-1 > -2)
    assert SelfConsistency(n=4).run(model, "q", MathVerifier(), Budget()).answer in ("\\frac{1}{2}", "0.5")


def test_self_consistency_breaks_ties_by_mean_logprob():
    model = ScriptedModel([A, B, A, B], logprobs=[-2.0, -0.5, -2.0, -0.5])
    res = SelfConsistency(n=4).run(model, "q", MathVerifier(), Budget())
    assert res.answer == "9" and res.text == B


def test_the_text_shown_is_a_clean_finished_solution_of_the_winning_answer():
    from ponder.samplers.self_consistency import repetitive

    loop = "Tom has 3 + 5 = 8 apples. " * 5 + "The answer is 8."
    clean = "Tom has 3 apples and buys 5 more, so 3 + 5 = 8. The answer is 8."
    assert repetitive(loop) and not repetitive(clean)
    model = ScriptedModel([loop, B, clean], logprobs=[-0.1, -0.2, -0.9])  # the loop is the most confident
    res = SelfConsistency(n=3).run(model, "q", MathVerifier(), Budget())
    assert res.answer == "8" and res.text == clean


def test_best_of_n_returns_the_highest_scored():
    model = ScriptedModel([A, B, C])
    res = BestOfN(n=3).run(model, "q", TableVerifier({A: 0.1, B: 0.9, C: 0.5}), Budget())
    assert (res.answer, res.text) == ("9", B)
    assert [c.scores["table"] for c in res.candidates] == [0.1, 0.9, 0.5]


def test_weighted_best_of_n_sums_scores_per_answer():
    a2 = "I get 8"
    model = ScriptedModel([A, B, a2])
    res = WeightedBestOfN(n=3).run(model, "q", TableVerifier({A: 0.4, B: 0.7, a2: 0.4}), Budget())
    assert res.answer == "8"  # 0.4 + 0.4 beats 0.7, though B alone scores highest
    assert res.text == A


def test_adaptive_consistency_stops_once_the_leader_cannot_be_overturned():
    model = ScriptedModel([A] * 16)
    res = AdaptiveConsistency(n=16, batch=4, min_samples=16, threshold=1.0).run(model, "q", MathVerifier(), Budget())
    # after 12 samples of "8", 4 remain: 12 - 0 > 4 stops sampling
    assert len(res.candidates) == 12 and res.trace[-1]["stopped"] == "unbeatable"


def test_adaptive_consistency_stops_at_the_threshold():
    model = ScriptedModel([A, A, A, B] + [C] * 12)
    res = AdaptiveConsistency(n=16, batch=4, min_samples=4, threshold=0.75).run(model, "q", MathVerifier(), Budget())
    assert res.answer == "8" and len(res.candidates) == 4 and res.trace[-1]["stopped"] == "threshold"


def test_adaptive_consistency_runs_to_n_when_undecided():
    model = ScriptedModel([A, B, C, "#### 11"] * 2)
    res = AdaptiveConsistency(n=8, batch=4, threshold=0.9).run(model, "q", MathVerifier(), Budget())
    assert len(res.candidates) == 8 and res.trace[-1]["stopped"] is None


def test_temperature_schedule_reaches_the_model():
    model = ScriptedModel([A] * 6)
    SelfConsistency(n=6, temperature=[0.3, 0.7, 1.0]).run(model, "q", MathVerifier(), Budget())
    assert model.calls[0].temperatures() == [0.3, 0.7, 1.0, 0.3, 0.7, 1.0]


def test_budget_exhaustion_returns_the_best_so_far():
    model = ScriptedModel([A, B, A, C, C, C, C, C])
    res = SelfConsistency(n=8).run(model, "q", MathVerifier(), Budget(max_generated_tokens=3))
    assert res.budget_exhausted and len(res.candidates) == 3 and res.answer == "8"


def test_verifier_budget_leaves_unscored_candidates_last():
    model = ScriptedModel([A, B, C])
    res = BestOfN(n=3).run(model, "q", MathVerifier(), Budget(max_verifier_calls=1))
    assert res.budget_exhausted and res.text == A
    assert [c.scores["math"] for c in res.candidates] == [1.0, float("-inf"), float("-inf")]


def test_strategies_run_on_a_real_backend_under_a_token_budget():
    budget = Budget(max_generated_tokens=40)
    res = SelfConsistency(n=4, max_new_tokens=30, seed=0).run(tiny_model(), "Tom has", MathVerifier(), budget)
    assert budget.usage.generated_tokens <= 40 and res.usage.generated_tokens == budget.usage.generated_tokens
    g = Greedy(max_new_tokens=5).run(tiny_model(), "Tom has", MathVerifier(), Budget())
    assert len(g.candidates) == 1 and g.candidates[0].completion.temperature == 0.0


@pytest.mark.parametrize("bad", [dict(n=0), dict(n="8"), dict(temperature=-1), dict(top_p=2)])
def test_bad_strategy_arguments_name_the_key(bad):
    with pytest.raises(ConfigError, match=f"strategy.{next(iter(bad))}"):
        SelfConsistency(**bad)
