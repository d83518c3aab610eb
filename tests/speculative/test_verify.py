"""The rejection sampler: exact on fixed distributions (chi-square, fixed seed)."""

import pytest
import torch
from scipy.stats import chisquare

from ponder.speculative.tree import Draft
from ponder.speculative.verify import accept

VOCAB = 6


def dist(seed, sharp=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(sharp * torch.randn(VOCAB, generator=g), -1)


def first_tokens(make_draft, probs, draws=12000, seed=0):
    g = torch.Generator().manual_seed(seed)
    counts = torch.zeros(VOCAB)
    for _ in range(draws):
        path, nxt = accept(probs, make_draft(g), greedy=False, generator=g)
        counts[make_draft.tokens[path[0] - 1] if path else nxt] += 1
    return counts


def check(counts, p):
    # tolerance: reject exactness only at p < 0.001 (the seed is fixed, so this never flakes)
    assert chisquare(counts.numpy(), (p * counts.sum()).numpy()).pvalue > 1e-3


def test_chain_with_draft_probabilities_matches_target():
    p, q = dist(0), dist(1, sharp=2.0)
    probs = torch.stack([p, dist(2), dist(3)])

    class Sampled:  # the draft token is drawn from q, as a draft model would
        def __call__(self, g):
            x = int(torch.multinomial(q, 1, generator=g))
            self.tokens = [x, 0]
            return Draft.chain([x, 0], torch.stack([q, dist(4)]))

    check(first_tokens(Sampled(), probs), p)


@pytest.mark.parametrize("proposed", [[3], [int(dist(0).argmax())], [1, 4, 2]])
def test_deterministic_siblings_match_target(proposed):
    """n-gram and top-k trees: fixed candidates, tried in order, still exact."""
    p = dist(0)
    probs = torch.stack([p] + [dist(5 + i) for i in proposed])

    class Fixed:
        tokens = proposed

        def __call__(self, g):
            return Draft(list(proposed), [0] * len(proposed))

    check(first_tokens(Fixed(), probs), p)


def test_a_wrong_rule_is_caught():
    """The test has power: always accepting the draft token is detected."""
    p, q = dist(0), dist(1, sharp=2.0)
    g = torch.Generator().manual_seed(0)
    counts = torch.zeros(VOCAB)
    for _ in range(12000):
        counts[int(torch.multinomial(q, 1, generator=g))] += 1
    assert chisquare(counts.numpy(), (p * counts.sum()).numpy()).pvalue < 1e-3


def test_greedy_walks_the_argmax_path():
    probs = torch.eye(VOCAB)[[2, 4, 1, 0]]  # after root: 2; after node 1: 4; ...
    tree = Draft([2, 3, 4, 5], [0, 0, 1, 1])  # root -> {2, 3}; node 1 -> {4, 5}
    assert accept(probs, tree, greedy=True) == ([1, 3], 0)  # probs[3] (node 3) puts its mass on 0
    assert accept(probs, Draft([5], [0]), greedy=True) == ([], 2)


def test_bonus_token_when_all_accepted():
    probs = torch.eye(VOCAB)[[2, 3]]
    g = torch.Generator().manual_seed(0)
    assert accept(probs, Draft.chain([2]), greedy=False, generator=g) == ([1], 3)


def test_draft_probabilities_need_a_chain():
    with pytest.raises(ValueError, match="chain"):
        accept(torch.ones(3, VOCAB) / VOCAB, Draft([1, 2], [0, 0], torch.ones(2, VOCAB) / VOCAB), greedy=False)
