"""Reward models on vLLM's pooling runner (`verifier.backend=vllm`) give the HF verifier's scores:
token-classification PRMs of both bodies `ponder train-prm` saves (Qwen2, Llama) and a
sequence-classification ORM, on tiny random models, with the same budget accounting."""

import math

import pytest
import torch

from ponder.budget import Budget
from ponder.errors import ConfigError
from ponder.types import Candidate
from ponder.verifiers import ProcessRewardModel, RewardModel
from test_prm import QUESTION, STEPS, tokenizer_with

VLLM = {"max_model_len": 1024, "kv_cache_gb": 0.1}
SOLUTIONS = [STEPS, STEPS[:1], STEPS[:2], ["The answer is 3.", "So 3."]]


def saved(tmp_path_factory, name, cls, tok, **cfg) -> str:
    """A tiny random model (head_dim 64, which vLLM's CPU attention takes) with its tokenizer."""
    from transformers import AutoConfig

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp(name)
    config = AutoConfig.for_model(
        cfg.pop("model_type"),
        vocab_size=len(tok),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,
        pad_token_id=tok.pad_token_id,
        **cfg,
    )
    net = cls(config).eval()
    if hasattr(net, "score"):
        with torch.no_grad():  # a head that tells steps apart, not one that says 0.5 everywhere
            net.score.weight.mul_(4.0)
    net.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module", params=["qwen2", "llama"])
def prm_folder(request, tmp_path_factory):
    from transformers import LlamaForTokenClassification, Qwen2ForTokenClassification

    cls = {"qwen2": Qwen2ForTokenClassification, "llama": LlamaForTokenClassification}[request.param]
    tok = tokenizer_with("<extra_0>", chat=True)
    return saved(tmp_path_factory, f"{request.param}-prm", cls, tok, model_type=request.param, num_labels=2)


def test_a_prm_on_vllm_scores_as_on_hf_and_pays_the_same_calls(prm_folder):
    hf = ProcessRewardModel(prm_folder, dtype="fp32", system=None)
    vl = ProcessRewardModel(prm_folder, dtype="fp32", system=None, backend="vllm", vllm=VLLM)
    a, b = Budget(), Budget()
    want, got = hf.step_scores(QUESTION, SOLUTIONS, a), vl.step_scores(QUESTION, SOLUTIONS, b)
    assert [len(s) for s in got] == [len(s) for s in SOLUTIONS]
    assert sum(got, []) == pytest.approx(sum(want, []), abs=1e-4)
    assert len({round(x, 3) for x in sum(got, [])}) > 3, got  # the scores differ step by step
    assert b.usage.verifier_calls == a.usage.verifier_calls == len(SOLUTIONS)
    # HF reuses a scored prefix (a node after its parent); vLLM's pooling runner computes them all
    assert b.usage.prompt_tokens + b.usage.cached_prompt_tokens >= a.usage.prompt_tokens

    cut = Budget(max_verifier_calls=2)
    scores = vl.step_scores(QUESTION, SOLUTIONS, cut)
    assert sum(scores[:2], []) == pytest.approx(sum(want[:2], []), abs=1e-4)
    assert all(math.isnan(x) for s in scores[2:] for x in s)
    assert cut.usage.verifier_calls == 2 and cut.exhausted
    assert vl.score(QUESTION, [Candidate("\n\n".join(STEPS))], Budget()) == pytest.approx([min(want[0])], abs=1e-4)


def test_an_orm_on_vllm_scores_as_on_hf(tmp_path_factory):
    from transformers import LlamaForSequenceClassification

    tok = tokenizer_with(chat=True)
    folder = saved(tmp_path_factory, "orm", LlamaForSequenceClassification, tok, model_type="llama", num_labels=1)
    cands = [Candidate("\n\n".join(s)) for s in SOLUTIONS]
    want = RewardModel(folder, dtype="fp32").score(QUESTION, cands, Budget())
    budget = Budget()
    got = RewardModel(folder, dtype="fp32", backend="vllm", vllm=VLLM).score(QUESTION, cands, budget)
    assert got == pytest.approx(want, abs=1e-4) and len(set(got)) == len(got)
    assert budget.usage.verifier_calls == len(cands)


def test_step_tag_prms_and_unknown_backends_are_refused_with_what_works(tmp_path_factory):
    from transformers import LlamaForCausalLM

    tok = tokenizer_with("ки")
    folder = saved(tmp_path_factory, "shepherd", LlamaForCausalLM, tok, model_type="llama")
    with pytest.raises(ConfigError, match="verifier.backend=hf"):
        ProcessRewardModel(folder, backend="vllm")
    with pytest.raises(ConfigError, match="verifier.backend must be hf or vllm"):
        ProcessRewardModel(folder, backend="tgi")
