"""Compute budgets: what was spent (`Usage`), what may be spent (`Budget`), and the FLOP model.

Work is charged where it happens (model backends, verifiers), never by strategies. A budget
is enforced: a backend asks how many rows it may extend before each forward pass and stops
the rest with finish_reason "budget"; strategies then return their best so far.

FLOP model (the one place it is defined): a forward pass that computes `t` new tokens, the
i-th of which attends to `c_i` positions (cached prefix plus itself), costs

    2 * P * t  +  4 * L * d_attn * sum_i c_i

where P is the parameter count excluding the input embedding (the lm_head matmul counts,
tied or not), L the number of layers and d_attn = heads * head_dim. The first term is the
matmuls (Kaplan et al. 2020, "Scaling Laws for Neural Language Models"), the second the
QK^T and AV products. Cached prompt tokens are free.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, fields

from ponder.errors import PonderError


class BudgetTooSmall(PonderError):
    """The budget cannot pay for a single step of the strategy; raised before any work."""


@dataclass
class Usage:
    generated_tokens: int = 0
    prompt_tokens: int = 0  # prompt tokens actually computed
    cached_prompt_tokens: int = 0  # prompt tokens served from a prefix cache (free)
    forward_passes: int = 0
    flops: float = 0.0
    verifier_calls: int = 0
    seconds: float = 0.0
    draft_tokens: int = 0  # tokens a speculative proposer offered, rejected ones included
    draft_forward_passes: int = 0  # forward passes of a draft model or early-exit draft
    draft_flops: float = 0.0  # the part of `flops` spent drafting


@dataclass(frozen=True)
class ModelShape:
    """What the FLOP model needs to know about a network."""

    params: int  # excluding the input embedding
    layers: int
    d_attn: int  # heads * head_dim
    context: int | None = None  # the longest sequence (prompt + completion) the model takes, if known

    def forward_flops(self, new_tokens: int, context_start: int) -> float:
        """FLOPs of computing `new_tokens` tokens after `context_start` cached positions."""
        attended = new_tokens * context_start + new_tokens * (new_tokens + 1) / 2
        return 2.0 * self.params * new_tokens + 4.0 * self.layers * self.d_attn * attended

    def decode_flops(self, context_lengths) -> float:
        """FLOPs of one decode step for rows whose contexts (incl. the new token) are given."""
        return 2.0 * self.params * len(context_lengths) + 4.0 * self.layers * self.d_attn * sum(context_lengths)


_LIMITS = {  # constructor argument -> Usage field
    "max_generated_tokens": "generated_tokens",
    "max_prompt_tokens": "prompt_tokens",
    "max_forward_passes": "forward_passes",
    "max_flops": "flops",
    "max_verifier_calls": "verifier_calls",
    "max_seconds": "seconds",
}


def check_limit(arg: str, value):
    """A limit is a finite number >= 0 (max_seconds > 0: no work fits in no time); true/false,
    NaN and infinity are refused rather than read as 1, 0 or "never"."""
    bad = isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0
    if bad or (arg == "max_seconds" and value == 0):
        least = "a number > 0" if arg == "max_seconds" else "a non-negative number"
        raise BudgetTooSmall(f"budget.{arg} must be {least} or null (unlimited), got {value!r}")
    return value


def budget_from(limits: dict) -> "Budget":
    """A Budget from a dict of limits; an unknown key is named with the valid ones."""
    unknown = [k for k in limits if k not in _LIMITS]
    if unknown:
        raise BudgetTooSmall(f"unknown budget key {unknown[0]!r}; the limits are {', '.join(_LIMITS)}")
    return Budget(**limits)


class Budget:
    """Limits on any of the Usage units (None = unlimited) and a meter of what was spent.

    A Budget meters one run (one prompt); make a new one per run. The clock starts at
    construction or at `start()`.
    """

    def __init__(
        self,
        max_generated_tokens: int | None = None,
        max_prompt_tokens: int | None = None,
        max_forward_passes: int | None = None,
        max_flops: float | None = None,
        max_verifier_calls: int | None = None,
        max_seconds: float | None = None,
    ):
        self.limits = {}
        for arg, value in locals().items():
            if arg in _LIMITS and value is not None:
                self.limits[_LIMITS[arg]] = check_limit(arg, value)
        self._usage = Usage()
        self.exhausted = False  # set when a limit stopped or refused work
        self.start()

    def start(self) -> "Budget":
        self._t0 = time.perf_counter()
        return self

    @property
    def usage(self) -> Usage:
        self._usage.seconds = time.perf_counter() - self._t0
        return self._usage

    def remaining(self, unit: str) -> float:
        if unit not in self.limits:
            return math.inf
        return max(0.0, self.limits[unit] - getattr(self.usage, unit))

    # -- asked by backends before work -------------------------------------------------
    def affordable_rows(self, rows: int, flops_per_row: float, forward: bool = True) -> int:
        """How many of `rows` sequences may each get one more token (by a forward pass, unless
        `forward` is False because the logits are already there)."""
        k = min(rows, self.remaining("generated_tokens"))
        if (forward and self.remaining("forward_passes") < 1) or self.remaining("seconds") <= 0:
            k = 0
        if flops_per_row > 0:
            k = min(k, self.remaining("flops") // flops_per_row)
        k = int(k)
        if k < rows:
            self.exhausted = True
        return k

    def can_prefill(self, tokens: int, flops: float) -> bool:
        ok = (
            tokens <= self.remaining("prompt_tokens")
            and flops <= self.remaining("flops")
            and self.remaining("forward_passes") >= 1
            and self.remaining("seconds") > 0
        )
        if not ok:
            self.exhausted = True
        return ok

    def affordable_verifier_calls(self, wanted: int) -> int:
        k = int(min(wanted, self.remaining("verifier_calls")))
        if self.remaining("seconds") <= 0:
            k = 0
        if k < wanted:
            self.exhausted = True
        return k

    # -- charged by backends and verifiers after work -----------------------------------
    def charge(self, **amounts) -> None:
        for unit, amount in amounts.items():
            setattr(self._usage, unit, getattr(self._usage, unit) + amount)

    # -- checked by the Generator before any work --------------------------------------
    def require(self, step: Usage, what: str) -> None:
        """Refuse up front a budget that cannot pay for `step`, the cheapest useful step."""
        for f in fields(Usage):
            need, limit = getattr(step, f.name), self.limits.get(f.name)
            if limit is not None and need > limit:
                arg = next(a for a, u in _LIMITS.items() if u == f.name)
                raise BudgetTooSmall(
                    f"budget.{arg}={limit} cannot pay for a single step of {what}, which needs "
                    f"{f.name}={need:.4g}; raise budget.{arg} to at least {need:.4g} or set it to null"
                )

    def draft_meter(self) -> "DraftMeter":
        return DraftMeter(self)

    def __repr__(self) -> str:
        return f"Budget({', '.join(f'max_{k}={v}' for k, v in self.limits.items())})"


class DraftMeter:
    """The budget as a speculative drafter sees it: its forward passes and tokens are counted
    apart from the target's (draft_*), its FLOPs count in both `draft_flops` and `flops`. Only
    the FLOP and time limits stop drafting, and a draft the budget cannot pay for is simply
    not made (the target decodes on), so this never marks the budget exhausted."""

    def __init__(self, budget: Budget):
        self.budget = budget

    def affordable_rows(self, rows: int, flops_per_row: float, forward: bool = True) -> int:
        if self.budget.remaining("seconds") <= 0:
            return 0
        return int(min(rows, self.budget.remaining("flops") // flops_per_row)) if flops_per_row > 0 else rows

    def can_prefill(self, tokens: int, flops: float) -> bool:
        return self.budget.remaining("seconds") > 0 and flops <= self.budget.remaining("flops")

    def charge(
        self,
        generated_tokens: int = 0,
        prompt_tokens: int = 0,
        cached_prompt_tokens: int = 0,
        forward_passes: int = 0,
        flops: float = 0.0,
    ) -> None:
        self.budget.charge(
            draft_tokens=generated_tokens, draft_forward_passes=forward_passes, draft_flops=flops, flops=flops
        )
