"""Benchmarks as data: prompts, references and a checker per task."""

from ponder.tasks.base import Problem, Task
from ponder.tasks.humaneval import HumanEval
from ponder.tasks.math_tasks import GSM8K, MATH500, JSONLTask

__all__ = ["Problem", "Task", "GSM8K", "MATH500", "HumanEval", "JSONLTask"]
