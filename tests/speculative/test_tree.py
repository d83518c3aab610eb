"""Token trees: structure built once from Medusa choices, and one-pass verification of a whole
tree in an HF model giving each node the logits its own path would get."""

import pytest
import torch

from fakes import tiny_network
from ponder.models.kv_cache import preallocated_cache
from ponder.speculative.decoder import KVRows
from ponder.speculative.tree import Draft, TokenTree, ancestors


def test_tree_from_choices():
    tree = TokenTree([(0,), (1,), (0, 0), (0, 1), (1, 0), (0, 0, 0)])
    assert tree.parents == [0, 0, 1, 1, 2, 3]
    assert tree.ranks == [0, 1, 0, 1, 0, 0]
    assert tree.depths.tolist() == [0, 1, 1, 2, 2, 2, 3]
    assert tree.mask[6].nonzero()[:, 0].tolist() == [0, 1, 3, 6]  # root, (0,), (0,0), (0,0,0)
    assert tree.mask[5].nonzero()[:, 0].tolist() == [0, 2, 5]
    assert tree.retrieve.tolist() == [[0, 1, 4, -1], [0, 2, 5, -1], [0, 1, 3, 6]]
    cands = torch.tensor([[10, 11], [20, 21], [30, 31]])  # per depth, top-2 tokens
    assert tree.draft(cands).tokens == [10, 11, 20, 21, 20, 30]


def test_tree_shapes_and_errors():
    assert TokenTree.chain(3).parents == [0, 1, 2]
    assert TokenTree.top_k(2, 2).parents == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="lacks its parent"):
        TokenTree([(0, 1)])
    with pytest.raises(ValueError, match="parent"):
        Draft([1, 2], [0, 2]).children()


def test_ancestor_matrix_pads_with_self_only():
    m = ancestors([0, 1], 5)
    assert m[2].tolist() == [True, True, True, False, False]
    assert m[4].tolist() == [False, False, False, False, True]


def prefix_rows(net, prompts):
    """Prefill each prompt alone, left-pad into one cache (as the backend does)."""
    width = max(map(len, prompts))
    cache = preallocated_cache(net.config, 16)
    kvs = []
    for p in prompts:
        out = net(input_ids=torch.tensor([p]), use_cache=True)
        kvs.append(out.past_key_values)
    for layer in range(net.config.num_hidden_layers):
        pad = torch.nn.functional.pad
        ks = [pad(kv.layers[layer].keys, (0, 0, width - len(p), 0)) for kv, p in zip(kvs, prompts)]
        vs = [pad(kv.layers[layer].values, (0, 0, width - len(p), 0)) for kv, p in zip(kvs, prompts)]
        cache.update(torch.cat(ks), torch.cat(vs), layer)
    mask = torch.zeros(len(prompts), width, dtype=torch.long)
    for r, p in enumerate(prompts):
        mask[r, width - len(p) :] = 1
    return KVRows(net, cache, mask, [len(p) for p in prompts])


@torch.inference_mode()
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_one_pass_tree_equals_each_path_alone(attn):
    net = tiny_network(0)
    net.config._attn_implementation = attn
    prompts = [[5, 9, 14, 20, 7], [3, 8]]
    drafts = [Draft([11, 12, 13, 14], [0, 0, 1, 3]), Draft([40, 41], [0, 1])]
    rows = prefix_rows(net, prompts)
    logits = rows.forward([[1] + d.tokens for d in drafts], [d.parents for d in drafts])
    for r, (p, d) in enumerate(zip(prompts, drafts)):
        tokens = [1] + d.tokens
        for node in range(len(tokens)):
            path, n = [], node  # the node's own path from the root
            while True:
                path.insert(0, tokens[n])
                if n == 0:
                    break
                n = d.parents[n - 1]
            alone = net(input_ids=torch.tensor([p + path])).logits[0, -1]
            torch.testing.assert_close(logits[r, node], alone, atol=1e-4, rtol=1e-4)


@torch.inference_mode()
def test_boolean_mask_with_eager_attention_is_silently_wrong():
    """Why the backend builds an additive float mask: transformers adds a 4D mask to the eager
    scores, so True/False become +1/+0 and nothing is masked."""
    net = tiny_network(0)
    net.config._attn_implementation = "eager"
    ids = torch.tensor([[5, 9, 14, 20]])
    causal = torch.ones(4, 4, dtype=torch.bool).tril()[None, None]
    right = net(input_ids=ids).logits
    float_mask = torch.zeros(causal.shape).masked_fill(~causal, torch.finfo(torch.float32).min)
    torch.testing.assert_close(net(input_ids=ids, attention_mask=float_mask).logits, right)
    assert not torch.allclose(net(input_ids=ids, attention_mask=causal).logits, right, atol=1e-3)


@torch.inference_mode()
def test_commit_keeps_only_the_accepted_path():
    net = tiny_network(0)
    prompts = [[5, 9, 14, 20, 7], [3, 8]]
    rows = prefix_rows(net, prompts)
    drafts = [Draft([11, 12, 13], [0, 0, 2]), Draft([40], [0])]
    rows.forward([[1] + d.tokens for d in drafts], [d.parents for d in drafts])
    rows.commit([[0, 2, 3], [0]])  # row 0 keeps root, node 2 (12), node 3 (13); row 1 keeps its root
    assert rows.lengths == [8, 3]
    nxt = rows.forward([[50], [51]], [[], []])[:, 0]
    for r, seq in enumerate([[5, 9, 14, 20, 7, 1, 12, 13, 50], [3, 8, 1, 51]]):
        torch.testing.assert_close(nxt[r], net(input_ids=torch.tensor([seq])).logits[0, -1], atol=1e-4, rtol=1e-4)
