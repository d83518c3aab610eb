"""Who pays for each row of a decode batch, and whose random draws it takes.

A decode batch may hold the rows of several requests (the pending calls of several problems run
together, `ponder.together`). Each request keeps its own budget and random generator: a row is
allowed, charged and sampled as it would be if its request were decoded alone, so problems run
together spend and draw what they would spend and draw one at a time (up to float rounding in
the batched matmuls).
"""

from __future__ import annotations

from collections import defaultdict

import torch

from ponder.budget import Budget
from ponder.decoding.sampling import sample_tokens
from ponder.errors import ConfigError


class RowOwners:
    """budgets[i] and generators[i] belong to request i; owner[r] is the request of batch row r."""

    def __init__(self, budgets: list[Budget], generators: list[torch.Generator], owner: list[int]):
        self.budgets, self.generators, self.owner = budgets, generators, owner

    @classmethod
    def single(cls, budget: Budget, generator: torch.Generator, rows: int) -> "RowOwners":
        return cls([budget], [generator], [0] * rows)

    def alone(self, decoder: str) -> tuple[Budget, torch.Generator]:
        """The one request of a batch that holds one (decoders that take one request at a time)."""
        if len(self.budgets) != 1:
            raise ConfigError(f"{decoder} decodes one request at a time, got rows of {len(self.budgets)}")
        return self.budgets[0], self.generators[0]

    def _by_owner(self, rows: list[int]) -> dict[int, list[int]]:
        """Positions in `rows` (batch rows, in order) grouped by request, in order."""
        groups = defaultdict(list)
        for j, r in enumerate(rows):
            groups[self.owner[r]].append(j)
        return groups

    def allow(self, rows: list[int], costs: list[float], forward: bool = True) -> list[int]:
        """Positions in `rows` that may get one more token: of each request's rows, the first
        ones its budget pays for, each priced at the dearest of them (`costs`: FLOPs per row)."""
        keep = []
        for o, js in self._by_owner(rows).items():
            k = self.budgets[o].affordable_rows(len(js), max(costs[j] for j in js), forward)
            keep += js[:k]
        return sorted(keep)

    def charge(self, rows: list[int], generated_tokens: bool = False, flops: list[float] | None = None) -> None:
        """Charge each request for its rows: a token each, and/or one forward pass and the rows' FLOPs."""
        for o, js in self._by_owner(rows).items():
            amounts = {"generated_tokens": len(js)} if generated_tokens else {}
            if flops is not None:
                amounts.update(forward_passes=1, flops=sum(flops[j] for j in js))
            self.budgets[o].charge(**amounts)

    def sample(
        self, logits: torch.Tensor, temps: torch.Tensor, rows: list[int], top_p: float, top_k: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One token per row of logits [len(rows), vocab], each request's rows drawn with its own
        generator; returns tokens [len(rows)] and their log-probabilities [len(rows)]."""
        groups = self._by_owner(rows)
        if len(groups) == 1:
            return sample_tokens(logits, temps, top_p, top_k, self.generators[next(iter(groups))])
        tokens = torch.empty(len(rows), dtype=torch.long, device=logits.device)
        logprobs = torch.empty(len(rows), device=logits.device)
        for o, js in groups.items():
            idx = torch.tensor(js, device=logits.device)
            tokens[idx], logprobs[idx] = sample_tokens(logits[idx], temps[idx], top_p, top_k, self.generators[o])
        return tokens, logprobs
