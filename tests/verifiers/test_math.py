import pytest

from ponder import Budget
from ponder.types import Candidate
from ponder.verifiers.math import MathVerifier, answers_equal, extract_answer, last_boxed


@pytest.mark.parametrize(
    "text,answer",
    [
        ("so \\boxed{\\frac{1}{2}} done", "\\frac{1}{2}"),
        ("first \\boxed{1} then \\boxed{x^{2}}", "x^{2}"),
        ("work\n#### 1,000", "1000"),
        ("The answer is $18.", "18"),
        ("The final answer is: 12 dollars.", "12"),
        ("I think 3, then 7.50 apples", "7.5"),
        ("no numbers here", None),
    ],
)
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer


def test_last_boxed_balances_braces():
    assert last_boxed("\\boxed{\\frac{a}{b}}") == "\\frac{a}{b}"
    assert last_boxed("\\boxed{unclosed") is None


def test_equivalence_by_math_verify():
    assert answers_equal("0.5", "\\frac{1}{2}")
    assert answers_equal("18.00", "18")
    assert not answers_equal("3", "4")
    assert not answers_equal(None, "4")


def test_check_against_a_reference_and_score_without_one():
    v = MathVerifier()
    assert v.check("... The answer is 72.", "72") and not v.check("The answer is 71", "72")
    b = Budget()
    cands = [Candidate("x", answer="1"), Candidate("y", answer=None)]
    assert v.score("q", cands, b) == [1.0, 0.0] and b.usage.verifier_calls == 2
