import pytest

from ponder import Budget, BudgetTooSmall, Generator
from ponder.errors import ConfigError
from ponder.samplers import SelfConsistency
from ponder.verifiers import LLMJudge


def test_from_overrides_builds_and_runs_under_the_budget(tiny_folder):
    gen = Generator.from_overrides(
        [
            f"model.path={tiny_folder}",
            "strategy=self_consistency",
            "strategy.n=3",
            "strategy.max_new_tokens=6",
            "budget.max_generated_tokens=10",
        ]
    )
    assert isinstance(gen.strategy, SelfConsistency) and gen.strategy.n == 3
    res = gen("Tom has 3 apples and buys 5 more. How many apples does he have?")
    assert res.usage.generated_tokens <= 10 and res.budget_exhausted
    assert len(res.candidates) == 3


def test_a_budget_too_small_for_one_step_is_refused_before_any_work(tiny_folder):
    gen = Generator.from_overrides([f"model.path={tiny_folder}", "budget.max_prompt_tokens=2"])
    with pytest.raises(BudgetTooSmall, match="max_prompt_tokens=2 cannot pay for a single step"):
        gen("Tom has 3 apples and buys 5 more.")
    assert not gen.model.prefix_cache._entries  # nothing was computed
    gen = Generator.from_overrides([f"model.path={tiny_folder}", "strategy=best_of_n", "budget.max_verifier_calls=0"])
    with pytest.raises(BudgetTooSmall, match="max_verifier_calls"):
        gen("Tom has 3 apples")


def test_each_call_gets_a_fresh_budget_unless_one_is_passed(tiny_folder):
    gen = Generator.from_overrides([f"model.path={tiny_folder}", "strategy=greedy", "strategy.max_new_tokens=4"])
    a, b = gen("Tom has"), gen("Tom has")
    assert a.usage.generated_tokens == b.usage.generated_tokens <= 4
    budget = Budget(max_generated_tokens=2)
    assert gen("Tom has", budget=budget).usage.generated_tokens <= 2


def test_config_mistakes_are_ponder_errors():
    with pytest.raises(ConfigError, match="(?s)Available options.*self_consistency"):
        Generator.from_overrides(["strategy=nope"])
    with pytest.raises(ConfigError, match="strategy.nope"):
        Generator.from_overrides(["strategy.nope=1"])


def test_llm_judge_defaults_to_the_generator_model(tiny_folder):
    gen = Generator.from_overrides(
        [
            f"model.path={tiny_folder}",
            "verifier=llm_judge",
            "strategy=best_of_n",
            "strategy.n=2",
            "strategy.max_new_tokens=4",
        ]
    )
    assert isinstance(gen.verifier, LLMJudge) and gen.verifier.model is gen.model
    res = gen("Tom has 3 apples")
    assert all(0 <= c.scores["llm_judge"] <= 1 for c in res.candidates) and res.usage.verifier_calls == 2


def test_python_api_mistakes_name_the_argument(tiny_folder):
    from ponder.errors import PromptError

    with pytest.raises(ConfigError, match=r"takes a list of overrides, got the string 'strategy=greedy'"):
        Generator.from_overrides("strategy=greedy")
    gen = Generator.from_overrides([f"model.path={tiny_folder}", "strategy=greedy", "strategy.max_new_tokens=2"])
    with pytest.raises(BudgetTooSmall, match="unknown budget key 'max_tokens'.*max_generated_tokens"):
        Generator(gen.model, gen.strategy, budget={"max_tokens": 10})
    for bad, kind in ((123, "int"), (None, "NoneType"), (b"Tom has", "bytes")):
        with pytest.raises(PromptError, match=f"a prompt must be a str, got {kind}"):
            gen(bad)


def test_one_bad_prompt_in_run_many_fails_only_itself(tiny_folder):
    from ponder.errors import PromptError

    gen = Generator.from_overrides([f"model.path={tiny_folder}", "strategy=greedy", "strategy.max_new_tokens=2"])
    out = dict(gen.run_many(["Tom has", None, "apple " * 600, "Ann has"], together=2))
    assert sorted(out) == [0, 1, 2, 3]
    assert isinstance(out[1], PromptError) and isinstance(out[2], PromptError) and "takes at most" in str(out[2])
    assert out[0].usage.generated_tokens >= 1 and out[3].usage.generated_tokens >= 1
