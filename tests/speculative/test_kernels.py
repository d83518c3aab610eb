"""The Triton tree-attention kernel against the PyTorch reference (in the interpreter on CPU),
and both inside a transformers model during tree verification."""

from unittest import mock

import pytest
import torch

from fakes import tiny_network, tiny_tokenizer
from ponder.budget import Budget
from ponder.models.hf import HFModel
from ponder.speculative import early_exit
from ponder.speculative.decoder import AUTO, pass_attention, pick_attention
from ponder.speculative.kernels import register, split_mask
from ponder.speculative.kernels.reference import reference_tree_attention
from ponder.speculative.kernels.triton_tree import triton_tree_attention
from ponder.speculative.tree import ancestors
from ponder.types import SamplingParams
from test_tree import prefix_rows


def random_tree(size, g):
    return [int(torch.randint(0, i + 1, (), generator=g)) for i in range(size - 1)]


def inputs(B, H, KVH, S, T, D, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, T, D, generator=g).to(dtype)
    k, v = (torch.randn(B, KVH, S + T, D, generator=g).to(dtype) for _ in range(2))
    prefix_valid = torch.rand(B, S, generator=g) > 0.25
    if S:
        prefix_valid[:, -1] = True
    tree = torch.stack([ancestors(random_tree(T, g), T) for _ in range(B)])
    return q, k, v, prefix_valid, tree


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float16, 2e-3)])
@pytest.mark.parametrize("S,T,D", [(37, 13, 16), (100, 29, 24), (0, 5, 16), (129, 65, 64)])
def test_kernel_matches_reference(dtype, tol, S, T, D):
    args = inputs(2, 4, 2, S, T, D, dtype, seed=S + T)
    got = triton_tree_attention(*args)
    want = reference_tree_attention(*args)
    torch.testing.assert_close(got.float(), want.float(), atol=tol, rtol=tol)


@pytest.mark.parametrize("H,KVH", [(6, 2), (3, 3), (5, 1)])
@pytest.mark.parametrize("splits", [2, 5])
def test_prefix_split_across_programs_matches_reference(H, KVH, splits):
    """The split-KV path (prefix slices merged by log-sum-exp), with query-head groups that are
    not powers of two, and block sizes that cut groups and tree nodes across row blocks."""
    args = inputs(2, H, KVH, 300, 11, 32, torch.float32, seed=H * splits)
    args[3][0, :160] = False  # a whole slice with no valid prefix slot for row 0
    got = triton_tree_attention(*args, splits=splits, block_m=16, block_n=32)
    torch.testing.assert_close(got, reference_tree_attention(*args), atol=1e-5, rtol=1e-5)


def test_kernel_reads_strided_views_and_writes_into_out():
    """As inside a model: q a transposed projection, k and v the first slots of a larger cache,
    the masks bool views of the additive mask, the output written in [B, T, H, D] layout."""
    q, k, v, pv, tree = inputs(2, 6, 2, 40, 9, 16, torch.float32, seed=3)
    want = reference_tree_attention(q, k, v, pv, tree)
    room = torch.randn(2, 2, 64, 16)
    k_view, v_view = room.clone()[:, :, :49], room.clone()[:, :, :49]
    k_view.copy_(k), v_view.copy_(v)
    allowed = torch.cat([pv[:, None].expand(2, 9, 40), tree], -1)
    out = torch.full((2, 9, 6, 16), float("nan"))
    triton_tree_attention(
        q.transpose(1, 2).contiguous().transpose(1, 2),
        k_view,
        v_view,
        allowed[:, 0, :40],
        allowed[:, :, 40:],
        splits=2,
        block_n=16,
        out=out.transpose(1, 2),
    )
    torch.testing.assert_close(out.transpose(1, 2), want, atol=1e-5, rtol=1e-5)


def test_split_mask_reads_the_decoders_additive_mask():
    _, _, _, pv, tree = inputs(2, 1, 1, 7, 5, 16, torch.float32, 0)
    allowed = torch.cat([pv[:, None].expand(2, 5, 7), tree], -1)
    bias = torch.zeros(2, 1, 5, 12).masked_fill(~allowed[:, None], torch.finfo(torch.float32).min)
    got_pv, got_tree = split_mask(bias, 2, 5, 12, "cpu")
    assert torch.equal(got_pv, pv) and torch.equal(got_tree, tree)


def tiny_qwen2():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(
        vocab_size=len(tiny_tokenizer()),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    torch.manual_seed(0)
    return Qwen2ForCausalLM(cfg).eval()


@torch.inference_mode()
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize("attention", ["ponder_tree", "ponder_tree_reference"])
def test_registered_attention_verifies_trees_inside_the_model(attention, arch):
    register()
    net = tiny_network(0) if arch == "llama" else tiny_qwen2()
    prompts = [[5, 9, 14, 20, 7], [3, 8]]
    blocks, parents = [[1, 11, 12, 13, 14], [1, 40, 41]], [[0, 0, 1, 3], [0, 1]]
    want = prefix_rows(net, prompts).forward(blocks, parents)
    rows = prefix_rows(net, prompts)
    rows.attention = attention
    calls = []
    with mock.patch("ponder.speculative.kernels.split_mask", wraps=split_mask) as spy:
        torch.testing.assert_close(rows.forward(blocks, parents), want, atol=1e-4, rtol=1e-4)
        calls.append(spy.call_count)
        rows.crop(rows.mask.shape[1])  # drop the trees again, verify them once more
        torch.testing.assert_close(rows.forward(blocks, parents), want, atol=1e-4, rtol=1e-4)
        calls.append(spy.call_count)
    assert calls == [1, 2]  # the mask is split once per pass, not once per layer
    assert net.config._attn_implementation != attention  # switched back after the pass


def test_decoding_with_the_triton_kernel_is_plain_greedy():
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=12)
    plain = HFModel(tiny_network(0), tiny_tokenizer()).generate(["Tom has 3 apples"], params, Budget())
    dec = early_exit(exit_layer=1, num_tokens=2, tree_width=2, attention="triton")
    fast = HFModel(tiny_network(0), tiny_tokenizer(), decoder=dec).generate(["Tom has 3 apples"], params, Budget())
    assert fast[0][0].token_ids == plain[0][0].token_ids


@pytest.mark.gpu
@pytest.mark.parametrize("dtype,tol", [(torch.bfloat16, 2e-2), (torch.float16, 2e-3), (torch.float32, 1e-4)])
def test_kernel_matches_reference_on_cuda(dtype, tol):
    for S, T, D in ((511, 63, 128), (2049, 130, 64), (8191, 16, 128)):
        args = [a.cuda() for a in inputs(2, 12, 2, S, T, D, dtype, seed=S)]
        want = reference_tree_attention(*args).float()
        for splits in (None, 1, 7):
            torch.testing.assert_close(triton_tree_attention(*args, splits=splits).float(), want, atol=tol, rtol=tol)


def test_auto_attention_takes_the_kernel_only_for_wide_passes_on_cuda():
    assert pick_attention("auto", "cpu") is None  # the model's own attention off CUDA
    assert pass_attention(AUTO, 32, 4096) == "ponder_tree" and pass_attention(AUTO, 64, 2048) == "ponder_tree"
    assert pass_attention(AUTO, 32, 4095) is None and pass_attention(AUTO, 1, 8192) is None
    assert pass_attention(None, 64, 8192) is None and pass_attention("ponder_tree", 1, 10) == "ponder_tree"


@pytest.mark.gpu
@pytest.mark.parametrize("attention,min_slots", [("triton", None), ("auto", 1)])
def test_cuda_decoding_with_the_kernel_is_plain_greedy(attention, min_slots, monkeypatch):
    if min_slots is not None:  # every pass counts as wide: auto takes the kernel
        monkeypatch.setattr("ponder.speculative.decoder.KERNEL_MIN_SLOTS", min_slots)
    params = SamplingParams(n=2, temperature=0.0, max_new_tokens=24)
    net = tiny_network(0).cuda()
    plain = HFModel(net, tiny_tokenizer()).generate(["Tom has 3 apples", "def f(x):"], params, Budget())
    dec = early_exit(exit_layer=1, num_tokens=3, tree_width=2, attention=attention)
    fast = HFModel(net, tiny_tokenizer(), decoder=dec)
    assert dec.attention == {"triton": "ponder_tree", "auto": AUTO}[attention]
    with mock.patch("ponder.speculative.kernels.split_mask", wraps=split_mask) as spy:
        got = fast.generate(["Tom has 3 apples", "def f(x):"], params, Budget())
    assert spy.call_count > 0  # the kernel ran
    assert [[c.token_ids for c in r] for r in got] == [[c.token_ids for c in r] for r in plain]
