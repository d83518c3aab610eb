"""Python code, checked by running it in the sandbox.

`check` grades a solution against hidden tests (HumanEval's `check(candidate)`); `score`,
which must not see hidden tests, runs the doctest examples of the prompt's docstring (the
public tests) and returns the share that pass.
"""

from __future__ import annotations

import doctest
import re
from typing import Sequence

from ponder.budget import Budget
from ponder.types import Candidate
from ponder.verifiers.sandbox import run_python

_FENCE = re.compile(r"```(?:python|py|Python)?[ \t]*\n(.*?)(?:```|$)", re.S)


def extract_code(text: str) -> str:
    """The last fenced code block of a reply, or the reply itself when it has none."""
    blocks = _FENCE.findall(text)
    return blocks[-1] if blocks else text


def program_for(prompt_code: str, completion: str, entry_point: str | None) -> str:
    """A solution as a whole program: a reply that defines the entry point stands alone (with the
    prompt's imports); a bare function body is appended to the prompt (HumanEval completions)."""
    code = extract_code(completion)
    if entry_point and re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", code, re.M):
        imports = "\n".join(line for line in prompt_code.splitlines() if line.startswith(("import ", "from ")))
        return imports + "\n" + code
    return prompt_code + code


def doctest_examples(text: str) -> list[tuple[str, str]]:
    """(source, expected output) of every `>>>` example in `text`."""
    try:
        examples = doctest.DocTestParser().get_examples(text)
    except ValueError:  # malformed doctest in the prompt: no public tests
        return []
    # an example at the end of a docstring swallows its closing quotes
    return [(e.source.strip(), re.split(r'"""|\'\'\'', e.want)[0].rstrip() + "\n") for e in examples]


_HARNESS = """
import doctest as _d
_passed = 0
for _src, _want in {examples!r}:
    try:
        _got = repr(eval(_src)) + "\\n"
        _passed += _d.OutputChecker().check_output(_want, _got, _d.ELLIPSIS | _d.NORMALIZE_WHITESPACE)
    except BaseException:
        pass
print("PONDER_PASSED", _passed)
"""


class CodeVerifier:
    """Runs candidate programs in the sandbox (time and memory limited, no network)."""

    name = "code"
    scores_steps = False
    same_answer = staticmethod(lambda a, b: a == b)  # programs are the same answer only when identical

    def bind(self, model) -> None:
        pass  # runs programs, needs no model

    def __init__(self, timeout: float = 10.0, memory_mb: int = 1024):
        self.timeout, self.memory_mb = timeout, memory_mb

    def extract_answer(self, text: str) -> str | None:
        return extract_code(text).strip() or None

    def check(self, completion: str, prompt_code: str, test: str, entry_point: str) -> bool:
        """HumanEval-style grading: the test module's `check(entry_point)` must pass."""
        program = program_for(prompt_code, completion, entry_point) + f"\n\n{test}\n\ncheck({entry_point})\n"
        return run_python(program, self.timeout, self.memory_mb).ok

    def public_score(self, prompt: str, text: str) -> float:
        examples = doctest_examples(prompt)
        match = re.search(r"def\s+(\w+)\s*\(", prompt)
        program = program_for(prompt if match else "", text, match.group(1) if match else None)
        if not examples:  # nothing to test against: at least it must run
            return float(run_python(program, self.timeout, self.memory_mb).ok)
        result = run_python(program + _HARNESS.format(examples=examples), self.timeout, self.memory_mb)
        found = re.search(r"PONDER_PASSED (\d+)", result.stdout)
        return int(found.group(1)) / len(examples) if found else 0.0

    def score(self, prompt: str, candidates: Sequence[Candidate], budget: Budget) -> list[float]:
        k = budget.affordable_verifier_calls(len(candidates))
        budget.charge(verifier_calls=k)
        return [self.public_score(prompt, c.text) if i < k else float("nan") for i, c in enumerate(candidates)]
