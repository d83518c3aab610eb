"""Python code, checked by running it in the sandbox.

`check` grades a solution against hidden tests (HumanEval's `check(candidate)`); `score`,
which must not see hidden tests, runs the doctest examples of the prompt's docstring (the
public tests) and returns the share that pass. Either way the program only runs in the
sandbox and serves its functions; the tests and their assertions run in a trusted checker
outside it (sandbox.run_checked), so nothing the program does (exit codes, excepthooks,
patched builtins, printed markers, objects equal to everything) can pass a test for it.
"""

from __future__ import annotations

import ast
import doctest
import re
from typing import Sequence

from ponder.budget import Budget
from ponder.types import Candidate
from ponder.verifiers.sandbox import run_checked

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


def stub_functions(code: str) -> list[str]:
    """Top-level functions of a prompt with no body but a docstring (or `...`/`pass`): the
    ones the candidate is to write. The others are the problem's helpers, which the tests use
    as the prompt defines them, whatever the candidate redefines."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    empty = lambda s: isinstance(s, ast.Pass) or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and all(map(empty, n.body))]


def runnable(code: str) -> str:
    """`code` when it compiles (the problem's helpers for the checker), else nothing."""
    try:
        compile(code, "<prompt>", "exec")
        return code
    except (SyntaxError, ValueError):
        return ""


class CodeVerifier:
    """Grades candidate programs run in the sandbox (time, memory and disk limited, no network,
    no view of the host) by tests run outside it."""

    name = "code"
    scores_steps = False
    needs_model = False  # CPU-side: problems run together serve its calls outside the model batch
    same_answer = staticmethod(lambda a, b: a == b)  # programs are the same answer only when identical

    def bind(self, model) -> None:
        pass  # runs programs, needs no model

    def __init__(self, timeout: float = 10.0, memory_mb: int = 1024):
        self.timeout, self.memory_mb = timeout, memory_mb

    def extract_answer(self, text: str) -> str | None:
        return extract_code(text).strip() or None

    def check(self, completion: str, prompt_code: str, test: str, entry_point: str) -> bool:
        """HumanEval-style grading: the test module's `check(entry_point)` must pass. The tests
        run in the trusted checker against the program's functions served from the sandbox."""
        program = program_for(prompt_code, completion, entry_point)
        helpers = runnable(prompt_code)
        check = {
            "kind": "check",
            "helpers": helpers,
            "test": test,
            "entry_point": entry_point,
            "serve": sorted({entry_point, *stub_functions(helpers)}),
        }
        verdict = run_checked(program, check, self.timeout, self.memory_mb).verdict
        return verdict is not None and verdict["passed"] == verdict["total"] == 1

    def public_score(self, prompt: str, text: str) -> float:
        """The share of the prompt's doctest examples the program passes (at most 1); with no
        examples, 1.0 when the program loads."""
        examples = doctest_examples(prompt)
        prompt_code = extract_code(prompt)
        helpers, match = runnable(prompt_code), re.search(r"def\s+(\w+)\s*\(", prompt_code)
        serve = stub_functions(helpers) or ([match.group(1)] if match else [])
        program = program_for(prompt_code if match else "", text, serve[-1] if serve else None)
        check = {"kind": "doctest" if examples else "load", "helpers": helpers, "serve": serve, "examples": examples}
        verdict = run_checked(program, check, self.timeout, self.memory_mb).verdict
        return verdict["passed"] / verdict["total"] if verdict else 0.0

    def score(self, prompt: str, candidates: Sequence[Candidate], budget: Budget) -> list[float]:
        k = budget.affordable_verifier_calls(len(candidates))
        budget.charge(verifier_calls=k)
        return [self.public_score(prompt, c.text) if i < k else float("nan") for i, c in enumerate(candidates)]
