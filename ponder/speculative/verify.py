"""The one rejection sampler every proposer's drafts go through.

Given the target's distribution at every node of a verified tree, walk down from the root:

- a chain with draft probabilities q (a draft model's samples): accept token x with probability
  min(1, p(x)/q(x)); on rejection draw from the residual norm(max(0, p - q)) (Leviathan et al.
  2023, "Fast Inference from Transformers via Speculative Decoding"; Chen et al. 2023);
- deterministic proposals (n-gram, top-k trees, Medusa): try the children in order, accepting
  x with probability r(x) under the current residual r, and on rejection set r(x) = 0 and
  renormalise. Either way the emitted token has exactly the target's distribution.

When every proposed node on the path is accepted the leaf's distribution gives a bonus token.
Rows with temperature 0 take the argmax all the way, which reproduces greedy decoding exactly.

`typical=(threshold, alpha)` is Medusa's typical acceptance, lossy and off by default: accept
the first child x with p(x) > min(threshold, alpha * exp(-H(p))), then sample from p.
"""

from __future__ import annotations

import torch

from ponder.decoding.sampling import draw
from ponder.speculative.tree import Draft


def accept(
    probs: torch.Tensor,
    draft: Draft,
    greedy: bool,
    generator: torch.Generator | None = None,
    typical: tuple[float, float] | None = None,
) -> tuple[list[int], int]:
    """The accepted nodes (root excluded, in order) and the token that follows them.

    probs [1 + T, vocab]: the target's (processed) distribution after each node; for a greedy
    row anything with the target's argmax will do (the decoder passes the logits).
    """
    tokens, kids = draft.tokens, draft.children()
    if draft.q is not None and any(len(k) > 1 for k in kids):
        raise ValueError("draft probabilities are only meaningful for a chain; pass q=None for trees")
    path, node = [], 0
    while True:
        p = probs[node]
        if greedy:
            best = int(p.argmax())
            nxt = next((c for c in kids[node] if tokens[c - 1] == best), None)
            if nxt is None:
                return path, best
            path.append(nxt)
            node = nxt
            continue
        if typical is not None:
            entropy = -(p * p.clamp_min(1e-30).log()).sum()
            bar = min(typical[0], typical[1] * float(torch.exp(-entropy)))
            nxt = next((c for c in kids[node] if p[tokens[c - 1]] > bar), None)
            if nxt is None:
                return path, int(draw(p[None], generator)[0])
            path.append(nxt)
            node = nxt
            continue
        residual = p.clone()
        moved = False
        for c in kids[node]:
            x = tokens[c - 1]
            u = torch.rand((), generator=generator, device=p.device)
            if draft.q is not None:
                q = draft.q[c - 1].to(p.device)
                ok = u * q[x] <= residual[x]  # u < p(x) / q(x), safe when q(x) is tiny
                if not ok:
                    residual = (residual - q).clamp_min(0)
            else:
                total = residual.sum()
                ok = u * total < residual[x]
                if not ok:
                    residual[x] = 0
            if ok:
                path.append(c)
                node, moved = c, True
                break
        if not moved:
            if residual.sum() <= 0:  # p == q exactly on the rejected support: cannot happen in exact arithmetic
                residual = p
            return path, int(draw(residual[None] / residual.sum(), generator)[0])
