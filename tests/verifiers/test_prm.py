"""PRM adapters on tiny random models of the hub formats' architectures, with the expected
scores computed independently here; aggregation; the LLM judge as a PRM."""

import copy
import math

import pytest
import torch

from fakes import ScriptedModel, tiny_tokenizer
from ponder.budget import Budget
from ponder.errors import ConfigError
from ponder.types import Candidate
from ponder.verifiers import LLMJudge, ProcessRewardModel
from ponder.verifiers.prm import aggregate_scores, split_steps

STEPS = ["2 + 2 = 4.", "10 - 3 = 7.", "The answer is 7."]
QUESTION = "Tom has 3 apples"


def tokenizer_with(*tokens, chat=False):
    tok = copy.deepcopy(tiny_tokenizer(chat))
    tok.add_tokens(list(tokens))
    return tok


def tiny_prm(tmp_path_factory, name, seed, tok, arch="llama", **cfg):
    """A tiny random model of a PRM's architecture, saved with its tokenizer; its folder."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForTokenClassification

    config, cls = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2-tc": (Qwen2Config, Qwen2ForTokenClassification)}[
        arch
    ]
    torch.manual_seed(seed)
    folder = tmp_path_factory.mktemp(name)
    cls(
        config(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            **cfg,
        )
    ).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def qwen_prm(tmp_path_factory):
    """A tiny Qwen2 token-classification PRM (the Qwen2.5-Math-PRM head shape: 2 labels)."""
    tok = tokenizer_with("<extra_0>", chat=True)
    return tiny_prm(tmp_path_factory, "qwen-prm", 0, tok, "qwen2-tc", num_labels=2, pad_token_id=tok.pad_token_id)


@pytest.fixture(scope="module")
def shepherd_prm(tmp_path_factory):
    """A tiny causal LM with a step tag token (the Math-Shepherd format)."""
    return tiny_prm(tmp_path_factory, "shepherd-prm", 1, tokenizer_with("ки"))


def test_token_classification_prm(qwen_prm):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    prm = ProcessRewardModel(qwen_prm, system=None)
    assert prm.format == "token_classification"
    budget = Budget()
    got = prm.step_scores(QUESTION, [STEPS, STEPS[:1]], budget)
    tok, net = AutoTokenizer.from_pretrained(qwen_prm), AutoModelForTokenClassification.from_pretrained(qwen_prm)
    # the format, written out: chat-rendered, steps joined and ended by <extra_0>, P(label 1) there
    text = f"<user>{QUESTION}<eos><assistant>" + "".join(s + "<extra_0>" for s in STEPS) + "<eos>"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    sep = tok.convert_tokens_to_ids("<extra_0>")
    logits = net(input_ids=torch.tensor([ids])).logits[0]
    want = torch.softmax(logits[torch.tensor(ids) == sep], -1)[:, 1]
    assert got[0] == pytest.approx(want.tolist(), abs=1e-5)
    assert got[1] == pytest.approx(want[:1].tolist(), abs=1e-5)  # causal: a prefix scores the same
    assert budget.usage.verifier_calls == 2 and budget.usage.flops > 0


def test_step_tag_prm(shepherd_prm):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    prm = ProcessRewardModel(shepherd_prm, aggregate="prod")
    assert prm.format == "step_tag"
    got = prm.step_scores(QUESTION, [STEPS], Budget())[0]
    tok, net = AutoTokenizer.from_pretrained(shepherd_prm), AutoModelForCausalLM.from_pretrained(shepherd_prm)
    ids = tok(QUESTION + " " + " ки\n".join(STEPS) + " ки\n")["input_ids"]
    logits = net(input_ids=torch.tensor([ids])).logits[0]
    at = logits[torch.tensor(ids) == tok.convert_tokens_to_ids("ки")]
    good, bad = tok("+", add_special_tokens=False)["input_ids"][0], tok("-", add_special_tokens=False)["input_ids"][0]
    want = torch.softmax(at[:, [good, bad]], -1)[:, 0]
    assert got == pytest.approx(want.tolist(), abs=1e-5)
    solution = Candidate("\n\n".join(STEPS))
    assert prm.score(QUESTION, [solution], Budget()) == pytest.approx([math.prod(want.tolist())], abs=1e-5)


@pytest.fixture(scope="module")
def rlhflow_prm(tmp_path_factory):
    """A tiny causal LM with a chat template (the RLHFlow format: steps as user turns)."""
    return tiny_prm(tmp_path_factory, "rlhflow-prm", 2, tokenizer_with(chat=True))


def test_chat_turns_prm(rlhflow_prm):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    prm = ProcessRewardModel(rlhflow_prm, format="chat_turns")
    got = prm.step_scores(QUESTION, [STEPS], Budget())[0]
    tok, net = AutoTokenizer.from_pretrained(rlhflow_prm), AutoModelForCausalLM.from_pretrained(rlhflow_prm)
    good, bad = tok("+", add_special_tokens=False)["input_ids"][0], tok("-", add_special_tokens=False)["input_ids"][0]
    want, conv = [], []
    for k, step in enumerate(STEPS):  # RLHFlow's reference: one pass per step, logits 3 from the end
        conv += [
            {"role": "user", "content": f"{QUESTION} {step}" if k == 0 else step},
            {"role": "assistant", "content": "+"},
        ]
        ids = tok(tok.apply_chat_template(conv, tokenize=False), add_special_tokens=False)["input_ids"]
        assert ids[-2] == good  # "+" then <eos>
        logits = net(input_ids=torch.tensor([ids])).logits[0, -3]
        want.append(torch.softmax(logits[[good, bad]], -1)[0].item())
    assert got == pytest.approx(want, abs=1e-5)


def test_prm_budget_and_bad_settings(shepherd_prm, tiny_folder):
    prm = ProcessRewardModel(shepherd_prm)
    budget = Budget(max_verifier_calls=1)
    got = prm.step_scores(QUESTION, [STEPS, STEPS], budget)
    assert not math.isnan(got[0][0]) and all(math.isnan(x) for x in got[1]) and budget.exhausted
    with pytest.raises(ConfigError, match="cannot tell the PRM format"):
        ProcessRewardModel(tiny_folder)
    with pytest.raises(ConfigError, match="aggregate must be one of"):
        ProcessRewardModel(shepherd_prm, aggregate="max")


def test_aggregation_and_steps():
    s = [0.9, 0.5, 0.8]
    assert [aggregate_scores(s, a) for a in ("last", "min", "prod", "mean")] == pytest.approx([0.8, 0.5, 0.36, 2.2 / 3])
    assert split_steps("a\n\n\n\nb\n\n  \n\nc") == ["a", "b", "c"]


def test_llm_judge_scores_each_step():
    judge = LLMJudge(ScriptedModel([]), per_step=True, aggregate="min")
    judge.model.score = lambda prompts, conts, budget: [-0.1, -2.0] if "10 - 3" in prompts[0] else [-1.0, -0.5]
    steps = judge.step_scores(QUESTION, [STEPS[:2]], Budget())[0]
    assert steps == pytest.approx([1 / (1 + math.exp(0.5)), 1 / (1 + math.exp(-1.9))])
    assert judge.score(QUESTION, [Candidate("\n\n".join(STEPS[:2]))], Budget()) == pytest.approx([min(steps)])
    budget = Budget()
    assert judge.step_scores(QUESTION, [STEPS[:2]], budget, known=[[0.25]]) == [pytest.approx([0.25, steps[1]])]
    assert budget.usage.verifier_calls == 1  # only the new step was judged


@pytest.mark.parametrize(
    "fixture,kw", [("qwen_prm", {"system": None}), ("shepherd_prm", {}), ("rlhflow_prm", {"format": "chat_turns"})]
)
def test_prm_reuses_the_scored_prefix(fixture, kw, request):
    """A node scored after its parent runs only its new tokens, with the same scores as a
    PRM scoring from scratch; an exact repeat runs nothing."""
    folder = request.getfixturevalue(fixture)
    cached, fresh = ProcessRewardModel(folder, **kw), ProcessRewardModel(folder, cache_tokens=0, **kw)
    b_cached, b_fresh = Budget(), Budget()
    for k in range(1, len(STEPS) + 1):
        assert cached.step_scores(QUESTION, [STEPS[:k]], b_cached) == [
            pytest.approx(fresh.step_scores(QUESTION, [STEPS[:k]], b_fresh)[0], abs=1e-5)
        ]
    assert b_cached.usage.cached_prompt_tokens > 0 and b_cached.usage.prompt_tokens < b_fresh.usage.prompt_tokens
    assert b_cached.usage.flops < b_fresh.usage.flops and b_fresh.usage.cached_prompt_tokens == 0
    passes = b_cached.usage.forward_passes
    assert cached.step_scores(QUESTION, [STEPS], b_cached) == [
        pytest.approx(fresh.step_scores(QUESTION, [STEPS], Budget())[0], abs=1e-5)
    ]
    assert b_cached.usage.forward_passes == passes and b_cached.usage.verifier_calls == len(STEPS) + 1
