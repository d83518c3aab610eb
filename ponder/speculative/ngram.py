"""N-gram (prompt lookup) proposer: the tokens that followed the latest earlier occurrence of
the context's last n tokens ("Prompt Lookup Decoding", Saxena 2023). No model, no draft
probabilities: its drafts are deterministic proposals."""

from __future__ import annotations

import torch

from ponder.errors import check_number
from ponder.speculative.tree import Draft


class NGramProposer:
    def __init__(self, num_tokens: int = 8, max_ngram: int = 3, min_ngram: int = 1):
        self.num_tokens = check_number("decoder.num_tokens", num_tokens, minimum=1, integer=True)
        self.max_ngram = check_number("decoder.max_ngram", max_ngram, minimum=1, integer=True)
        self.min_ngram = check_number("decoder.min_ngram", min_ngram, minimum=1, maximum=max_ngram, integer=True)

    def lookup(self, context: list[int]) -> list[int]:
        ids = torch.tensor(context)
        for n in range(self.max_ngram, self.min_ngram - 1, -1):
            if len(ids) <= n:
                continue
            windows = ids[:-1].unfold(0, n, 1)  # every earlier n-gram (not the tail itself)
            hits = (windows == ids[-n:]).all(-1).nonzero()
            for start in reversed(hits[:, 0].tolist()):  # latest first
                follow = context[start + n : start + n + self.num_tokens]
                if follow:
                    return follow
        return []

    def propose(self, rows, contexts, temperatures, top_p, top_k, generator, budget, room) -> list[Draft]:
        drafts = [Draft.chain(self.lookup(c)[:room]) for c in contexts]
        budget.draft_meter().charge(generated_tokens=sum(len(d) for d in drafts))
        return drafts
