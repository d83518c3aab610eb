import pytest
import torch

from fakes import tiny_network, tiny_tokenizer
from ponder import Budget, SamplingParams
from ponder.errors import ConfigError
from ponder.models.cpu_linear import available, bf16_available, pack_linears
from ponder.models.hf import HFModel
from ponder.models.loading import load_pretrained
from ponder.speculative import ngram

pytestmark = pytest.mark.skipif(not available(), reason="this torch build has no oneDNN")


def test_packed_weights_give_the_dense_logits_and_the_same_greedy_output():
    dense, packed = tiny_network(0), tiny_network(0)
    assert pack_linears(packed) == 2 * 7 + 1  # q k v o gate up down per layer, and the lm_head
    assert pack_linears(packed) == 0  # packing again is a no-op
    ids = torch.randint(3, 300, (3, 17))
    with torch.inference_mode():
        torch.testing.assert_close(packed(ids).logits, dense(ids).logits, rtol=1e-4, atol=1e-4)
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=30)
    prompts = ["Tom has 3 apples", "def f(x):"]
    want = HFModel(dense, tiny_tokenizer()).generate(prompts, params, Budget())
    for decoder in (None, ngram()):  # plain steps of one token and verification passes of several
        got = HFModel(packed, tiny_tokenizer(), decoder=decoder).generate(prompts, params, Budget())
        assert [[c.token_ids for c in r] for r in got] == [[c.token_ids for c in r] for r in want]


def test_a_changed_weight_is_repacked_and_autograd_takes_the_plain_path():
    lin = torch.nn.Linear(16, 24)
    pack_linears(lin)
    x = torch.randn(5, 16)
    with torch.no_grad():
        lin.weight.mul_(2.0)  # in place: the packed copy is stale
        torch.testing.assert_close(lin(x), torch.nn.functional.linear(x, lin.weight, lin.bias))
    lin.weight = torch.nn.Parameter(torch.randn(24, 16))  # replaced
    with torch.no_grad():
        torch.testing.assert_close(lin(x), torch.nn.functional.linear(x, lin.weight, lin.bias))
    lin(x).sum().backward()
    torch.testing.assert_close(lin.weight.grad, torch.ones(5, 24).T @ x)


def test_bad_packed_weights_value_is_a_config_error():
    with pytest.raises(ConfigError, match="model.packed_weights"):
        load_pretrained("smollm2-135m", packed_weights="yes")


def test_bf16_weights_are_packed_where_the_cpu_runs_bf16():
    lin = torch.nn.Linear(64, 48).to(torch.bfloat16)
    assert pack_linears(lin) == (1 if bf16_available() else 0)
    x = torch.randn(5, 64, dtype=torch.bfloat16)
    with torch.inference_mode():
        got, want = lin(x), torch.nn.functional.linear(x.float(), lin.weight.float(), lin.bias.float())
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want, rtol=2e-2, atol=2e-2)  # bf16 rounding of the output
    with pytest.raises(RuntimeError):  # another dtype's input fails as it would without packing
        lin(x.float())
