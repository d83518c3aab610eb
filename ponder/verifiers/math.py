"""Math answers: extraction from model text, and equivalence by the math-verify library."""

from __future__ import annotations

import re
from typing import Sequence

from ponder.budget import Budget
from ponder.types import Candidate

_NUMBER = r"-?\$?\d[\d,]*(?:\.\d+)?"


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}), braces balanced."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth, j = 1, i
    while j < len(text) and depth:
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        j += 1
    return text[i : j - 1].strip() if depth == 0 else None


def extract_answer(text: str) -> str | None:
    """The final answer of a solution: \\boxed{}, then '#### x', then 'the answer is x',
    then the last number in the text. None when there is nothing answer-like."""
    if (boxed := last_boxed(text)) is not None:
        return normalize(boxed)
    for pattern in (
        r"####\s*(.+)",
        r"[Tt]he (?:final )?answer is[:\s]*\$?\\?\(?\s*(.+?)(?:\s*\\?\))?\s*(?:\.\s|\.?$|\n)",
    ):
        if found := re.findall(pattern, text):
            return normalize(found[-1])
    if numbers := re.findall(_NUMBER, text):
        return normalize(numbers[-1])
    return None


def normalize(answer: str) -> str:
    """Canonical string form used for voting: no $, commas in numbers, units-free numbers."""
    a = answer.strip().strip(".").replace("\\$", "").replace("$", "").strip()
    a = re.sub(r"\\text\{[^}]*\}", "", a).strip()
    if re.fullmatch(r"-?[\d,]*\.?\d+", a):
        a = a.replace(",", "")
        if "." in a:
            a = a.rstrip("0").rstrip(".")
        a = str(int(a)) if re.fullmatch(r"-?\d+", a) else a
    elif m := re.match(r"^(-?[\d,]*\.?\d+)\s+[A-Za-z]", a):  # "18 dollars" -> "18"
        a = normalize(m.group(1))
    return a


def answers_equal(a: str | None, b: str | None) -> bool:
    """Mathematical equivalence (1/2 == 0.5 == \\frac{1}{2}) by math-verify."""
    if a is None or b is None:
        return False
    if normalize(a) == normalize(b):
        return True
    from math_verify import parse, verify

    try:
        return bool(verify(parse(f"${b}$"), parse(f"${a}$")))
    except Exception:  # math-verify raises on unparsable input; that is "not equal"
        return False


class MathVerifier:
    """Checks final answers. Against a reference (`check`) it grades; as a verifier with no
    reference (`score`) it can only check that a solution states an answer: 1.0 if one can be
    extracted, else 0.0. Pick `orm` or `llm_judge` to rank solutions by quality."""

    name = "math"
    scores_steps = False
    needs_model = False  # CPU-side: problems run together serve its calls outside the model batch
    same_answer = staticmethod(answers_equal)

    def bind(self, model) -> None:
        pass  # checks answers, needs no model

    def extract_answer(self, text: str) -> str | None:
        return extract_answer(text)

    def check(self, text: str, reference: str) -> bool:
        return answers_equal(self.extract_answer(text), reference)

    def score(self, prompt: str, candidates: Sequence[Candidate], budget: Budget) -> list[float]:
        k = budget.affordable_verifier_calls(len(candidates))
        budget.charge(verifier_calls=k)
        return [float(c.answer is not None) if i < k else float("nan") for i, c in enumerate(candidates)]
