"""Math word problems: GSM8K, MATH-500, and any JSONL file of question/answer pairs."""

from __future__ import annotations

import os
from pathlib import Path

from ponder.tasks.base import Problem, Task, hub_rows, read_jsonl

INSTRUCTION = "{question}\n\nSolve the problem step by step. End with: The answer is <number>."
LATEX_INSTRUCTION = "{question}\n\nSolve the problem step by step. Put the final answer in \\boxed{{}}."


def data_roots() -> list[Path]:
    """Where local data is looked for, in order: $PONDER_DATA; ../shared/data beside the current
    folder (these machines' shared data folder, next to each checkout); the same beside the
    checkout ponder is imported from; ~/.cache/ponder-data. The hub comes after all of them."""
    roots = [Path(os.environ["PONDER_DATA"])] if os.environ.get("PONDER_DATA") else []
    checkout = Path(__file__).resolve().parents[2]
    roots += [Path.cwd().parent / "shared" / "data", checkout.parent / "shared" / "data"]
    return roots + [Path.home() / ".cache" / "ponder-data"]


def local_data(*parts: str) -> Path | None:
    """The first `<root>/<parts>` file of `data_roots()`, if any."""
    return next((p for root in data_roots() if (p := Path(root, *parts)).is_file()), None)


class GSM8K(Task):
    """GSM8K ("Training Verifiers to Solve Math Word Problems", Cobbe et al. 2021): hub
    openai/gsm8k, a local JSONL with its fields (task.path), or $PONDER_DATA/gsm8k/<split>.jsonl."""

    name = "gsm8k"

    def __init__(self, path: str | None = None, split: str = "test", template: str = INSTRUCTION, **kw):
        super().__init__(**kw)
        self.path, self.split, self.template = path, split, template

    def load(self) -> list[Problem]:
        path = self.path or local_data("gsm8k", f"{self.split}.jsonl")
        rows = (
            read_jsonl(path, ("question", "answer"), text=("question", "answer"))
            if path
            else hub_rows(
                "openai/gsm8k",
                "main",
                self.split,
                "pass task.path=<gsm8k jsonl> or set PONDER_DATA (see docs/usage.md)",
            )
        )
        return [
            Problem(
                f"gsm8k-{self.split}-{i}",
                self.template.format(question=r["question"]),
                r["answer"].split("####")[-1].strip().replace(",", ""),
            )
            for i, r in enumerate(rows)
        ]


class MATH500(Task):
    """MATH-500 (Lightman et al. 2023's subset of MATH): hub HuggingFaceH4/MATH-500 or a local JSONL
    with fields problem and answer."""

    name = "math500"

    def __init__(self, path: str | None = None, template: str = LATEX_INSTRUCTION, **kw):
        super().__init__(**kw)
        self.path, self.template = path, template

    def load(self) -> list[Problem]:
        path = self.path or local_data("math500", "test.jsonl")
        rows = (
            read_jsonl(path, ("problem", "answer"), text=("problem",))
            if path
            else hub_rows(
                "HuggingFaceH4/MATH-500",
                None,
                "test",
                "pass task.path=<MATH-500 jsonl> or set PONDER_DATA (see docs/usage.md)",
            )
        )
        return [
            Problem(r.get("unique_id", f"math500-{i}"), self.template.format(question=r["problem"]), r["answer"])
            for i, r in enumerate(rows)
        ]


class JSONLTask(Task):
    """Any local JSONL: `question_field` is asked, `answer_field` is the reference, compared by
    math equivalence (`checker: math`) or exact string match (`checker: exact`)."""

    name = "jsonl"

    def __init__(
        self,
        path: str | None = None,
        question_field: str = "question",
        answer_field: str = "answer",
        id_field: str | None = None,
        template: str = INSTRUCTION,
        checker: str = "math",
        **kw,
    ):
        from ponder.errors import ConfigError

        super().__init__(**kw)
        if not path:
            raise ConfigError("task=jsonl needs task.path=<file.jsonl> (and task.question_field / task.answer_field)")
        if checker not in ("math", "exact"):
            raise ConfigError(f"task.checker must be 'math' or 'exact', got {checker!r}")
        self.path, self.q, self.a, self.id_field = path, question_field, answer_field, id_field
        self.template, self.checker = template, checker

    def load(self) -> list[Problem]:
        rows = read_jsonl(self.path, (self.q, self.a) + ((self.id_field,) if self.id_field else ()), text=(self.q,))
        return [
            Problem(
                str(r[self.id_field]) if self.id_field else f"{Path(self.path).stem}-{i}",
                self.template.format(question=r[self.q]),
                str(r[self.a]).strip(),
            )
            for i, r in enumerate(rows)
        ]

    def check(self, text: str, problem: Problem) -> bool:
        if self.checker == "exact":
            from ponder.verifiers.math import extract_answer

            return (extract_answer(text) or text.strip()) == problem.reference
        return super().check(text, problem)
