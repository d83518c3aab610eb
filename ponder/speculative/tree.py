"""Token trees: what a proposer offers, and the attention structure that verifies it in one
forward pass.

A draft for one row is a tree whose root (node 0) is the row's pending token (sampled but not
yet in the KV cache) and whose nodes 1..T are proposed continuations, each with a parent index
lower than its own. A chain is the tree whose parents are 0, 1, 2, ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch


@dataclass
class Draft:
    """Proposed nodes after a row's pending token.

    tokens[i] is node i+1's token and parents[i] its parent (0 = the pending token). `q`, for
    chains sampled from a draft model only, holds the distribution node i+1 was drawn from
    [T, vocab]; without it proposals count as deterministic (n-gram, top-k trees).
    """

    tokens: list[int] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)
    q: torch.Tensor | None = None

    @classmethod
    def chain(cls, tokens: Sequence[int], q: torch.Tensor | None = None) -> "Draft":
        return cls(list(tokens), list(range(len(tokens))), q)

    def __len__(self) -> int:
        return len(self.tokens)

    def children(self) -> list[list[int]]:
        """children[n]: the nodes whose parent is node n, in proposal order (root = 0)."""
        kids: list[list[int]] = [[] for _ in range(len(self) + 1)]
        for i, p in enumerate(self.parents):
            if not 0 <= p <= i:
                raise ValueError(f"node {i + 1} has parent {p}: parents must come before their children")
            kids[p].append(i + 1)
        return kids


def depths(parents: Sequence[int]) -> list[int]:
    """Depth of the root and of every node of a tree given by its parents (position offsets)."""
    d = [0]
    for p in parents:
        d.append(d[p] + 1)
    return d


def ancestors(parents: Sequence[int], size: int) -> torch.Tensor:
    """[size, size] bool: entry (i, j) when node j is node i or an ancestor of it, for a tree of
    1 + len(parents) nodes padded to `size`; a padding node sees only itself."""
    allowed = torch.eye(size, dtype=torch.bool)
    for i, p in enumerate(parents, start=1):
        allowed[i] |= allowed[p]
    return allowed


@dataclass
class TokenTree:
    """A static tree given as Medusa "choices": each choice is a path of top-k ranks, one per
    depth, e.g. [(0,), (1,), (0, 0), (0, 1)]. Every prefix of a choice must itself be a choice.

    Built once: `parents` and `ranks` (node order: by depth, then path), the attention `mask`
    over root + nodes, the `depths` (position offsets), and `retrieve`, the node indices of every
    root-to-leaf path padded with -1.
    """

    choices: list[tuple[int, ...]]

    def __post_init__(self):
        paths = sorted({tuple(c) for c in self.choices}, key=lambda c: (len(c), c))
        if not paths or any(not c or min(c) < 0 for c in paths):
            raise ValueError("tree choices must be non-empty paths of non-negative top-k ranks")
        index = {(): 0}
        self.parents, self.ranks = [], []
        for i, path in enumerate(paths, start=1):
            if path[:-1] not in index:
                raise ValueError(f"tree choice {path} lacks its parent {path[:-1]}")
            index[path] = i
            self.parents.append(index[path[:-1]])
            self.ranks.append(path[-1])
        self.paths = paths
        self.size = len(paths) + 1
        self.depth = max(len(p) for p in paths)
        self.mask = ancestors(self.parents, self.size)
        self.depths = torch.tensor([0] + [len(p) for p in paths])
        leaves = [p for p in paths if not any(q[:-1] == p for q in paths)]
        self.retrieve = torch.full((len(leaves), self.depth + 1), -1, dtype=torch.long)
        for r, leaf in enumerate(leaves):
            nodes = [0] + [index[leaf[:d]] for d in range(1, len(leaf) + 1)]
            self.retrieve[r, : len(nodes)] = torch.tensor(nodes)

    @classmethod
    def chain(cls, length: int) -> "TokenTree":
        return cls([(0,) * d for d in range(1, length + 1)])

    @classmethod
    def top_k(cls, width: int, depth: int) -> "TokenTree":
        """The first `width` ranks under the top-1 path at every depth (a "sparse" tree)."""
        return cls([(0,) * (d - 1) + (k,) for d in range(1, depth + 1) for k in range(width)])

    def draft(self, candidates: torch.Tensor) -> Draft:
        """The draft this tree takes from per-depth ranked candidates [depth, k] (e.g. the
        top-k tokens of each Medusa head)."""
        return Draft([int(candidates[len(p) - 1, r]) for p, r in zip(self.paths, self.ranks)], list(self.parents))
