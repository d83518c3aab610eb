import re

import pytest

from ponder.budget import Budget, BudgetTooSmall, ModelShape, Usage, budget_from


def test_flop_model():
    shape = ModelShape(params=100, layers=2, d_attn=8)
    # 3 new tokens after 4 cached: attended positions 5 + 6 + 7 = 18
    assert shape.forward_flops(3, 4) == 2 * 100 * 3 + 4 * 2 * 8 * 18
    assert shape.decode_flops([5, 7]) == 2 * 100 * 2 + 4 * 2 * 8 * 12


def test_affordable_rows_respects_every_limit():
    b = Budget(max_generated_tokens=5, max_flops=1000)
    assert b.affordable_rows(3, 100) == 3 and not b.exhausted
    b.charge(generated_tokens=4)
    assert b.affordable_rows(3, 100) == 1 and b.exhausted
    b = Budget(max_flops=250)
    assert b.affordable_rows(4, 100) == 2
    b = Budget(max_forward_passes=0)
    assert b.affordable_rows(4, 0) == 0 and b.affordable_rows(4, 0, forward=False) == 4
    b = Budget(max_seconds=1e-9)
    assert b.affordable_rows(1, 0) == 0


def test_require_refuses_a_budget_too_small_for_one_step_and_says_what_to_do():
    with pytest.raises(
        BudgetTooSmall, match=r"max_prompt_tokens=10 .* needs prompt_tokens=50.*raise budget.max_prompt_tokens"
    ):
        Budget(max_prompt_tokens=10).require(Usage(prompt_tokens=50), "greedy")
    Budget(max_prompt_tokens=50).require(Usage(prompt_tokens=50), "greedy")


def test_bad_limits_are_refused():
    with pytest.raises(BudgetTooSmall, match="max_generated_tokens must be a non-negative number"):
        Budget(max_generated_tokens=-1)
    with pytest.raises(BudgetTooSmall, match="'lots'"):
        Budget(max_flops="lots")


@pytest.mark.parametrize(
    "limits, phrase",
    [
        ({"max_seconds": 0}, "budget.max_seconds must be a number > 0 or null (unlimited), got 0"),
        ({"max_flops": float("nan")}, "budget.max_flops must be a non-negative number or null (unlimited), got nan"),
        ({"max_flops": float("inf")}, "got inf"),
        (
            {"max_generated_tokens": True},
            "budget.max_generated_tokens must be a non-negative number or null (unlimited), got True",
        ),
    ],
)
def test_limits_that_would_run_nothing_or_read_as_one_are_refused(limits, phrase):
    with pytest.raises(BudgetTooSmall, match=re.escape(phrase)):
        Budget(**limits)


def test_an_unknown_budget_key_names_the_valid_ones():
    with pytest.raises(BudgetTooSmall, match="unknown budget key 'max_tokens'.*max_generated_tokens"):
        budget_from({"max_tokens": 10})


def test_verifier_calls_are_limited():
    b = Budget(max_verifier_calls=3)
    assert b.affordable_verifier_calls(5) == 3 and b.exhausted
