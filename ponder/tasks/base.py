"""A benchmark is data: problems with references, a prompt per problem, and a checker."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ponder.errors import DatasetError


@dataclass
class Problem:
    id: str
    question: str  # what the model is asked (already formatted by the task)
    reference: Any  # what the checker compares against
    meta: dict = field(default_factory=dict)


def read_jsonl(path: str | os.PathLike, fields: tuple[str, ...], text: tuple[str, ...] = ()) -> list[dict]:
    """Rows of a JSONL file; every row must have `fields`, none of them null, and `text` fields
    must be strings. Errors name the file and line."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise DatasetError(f"task.path '{path}' is a folder; give the JSONL file itself, e.g. {path}/test.jsonl")
    if not path.is_file():
        raise DatasetError(f"dataset file '{path}' does not exist; check task.path")
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DatasetError(
                    f"{path}:{n} is not valid JSON ({e.msg}); each line must be one JSON object"
                ) from None
            if not isinstance(row, dict):
                raise DatasetError(f"{path}:{n} is a JSON {type(row).__name__}, not an object")
            missing = [k for k in fields if k not in row]
            if missing:
                raise DatasetError(
                    f"{path}:{n} has no field {missing[0]!r} (fields there: {sorted(row)}); "
                    f"name the right field in the task config"
                )
            for k in fields:
                if row[k] is None or (k in text and not isinstance(row[k], str)):
                    what = "text" if k in text else "a value"
                    raise DatasetError(
                        f"{path}:{n} field {k!r} must be {what}, got {json.dumps(row[k])[:80]}; fix or remove the row"
                    )
            rows.append(row)
    if not rows:
        raise DatasetError(f"dataset file '{path}' holds no rows")
    return rows


def hub_rows(hub_id: str, config: str | None, split: str, local_hint: str) -> list[dict]:
    try:
        import datasets
    except ImportError:
        raise DatasetError(f"loading {hub_id} from the hub needs `pip install datasets`; or {local_hint}") from None
    try:
        return list(datasets.load_dataset(hub_id, config, split=split))
    except Exception as e:
        raise DatasetError(
            f"could not load {hub_id} ({split}) from the hub: {type(e).__name__}: {str(e)[:200]}. Offline? {local_hint}"
        ) from None


class Task:
    """Subclasses set `name` and define `load() -> list[Problem]`; `check` grades one solution text."""

    name = "task"
    verifier = "math"

    def __init__(self, limit: int | None = None, offset: int = 0):
        from ponder.errors import check_number

        if limit is not None:
            check_number("task.limit", limit, minimum=1, integer=True)
        check_number("task.offset", offset, minimum=0, integer=True)
        self.limit, self.offset = limit, offset
        self._problems: list[Problem] | None = None

    def problems(self) -> list[Problem]:
        if self._problems is None:
            every = self.load()
            if self.offset >= len(every):
                raise DatasetError(
                    f"task.offset={self.offset} is past the end of {self.name}, which has {len(every)} problems; "
                    f"use an offset below {len(every)}"
                )
            end = None if self.limit is None else self.offset + self.limit
            self._problems = every[self.offset : end]
        return self._problems

    def __iter__(self) -> Iterator[Problem]:
        return iter(self.problems())

    def __len__(self) -> int:
        return len(self.problems())

    def check(self, text: str, problem: Problem) -> bool:
        from ponder.verifiers.math import MathVerifier

        return MathVerifier().check(text, str(problem.reference))
