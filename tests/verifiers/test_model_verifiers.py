import math

import pytest
import torch

from fakes import tiny_model, tiny_network, tiny_tokenizer
from ponder import Budget
from ponder.errors import ModelNotFound
from ponder.types import Candidate
from ponder.verifiers import LLMJudge, RewardModel


@pytest.fixture(scope="module")
def reward_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("orm")
    tiny_network(seed=1, classifier=True).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return str(folder)


def test_reward_model_scores_with_its_head_and_charges_the_budget(reward_folder):
    orm = RewardModel(reward_folder, dtype="fp32")
    net = tiny_network(seed=1, classifier=True)
    cands = [Candidate("The answer is 8."), Candidate("The answer is 9.")]
    budget = Budget()
    got = orm.score("Tom has 3 apples", cands, budget)
    tok = tiny_tokenizer()
    for cand, score in zip(cands, got):
        ids = tok("Tom has 3 apples\n" + cand.text)["input_ids"]
        with torch.no_grad():
            expected = net(torch.tensor([ids])).logits[0, 0].item()
        assert abs(score - expected) < 1e-4
    assert budget.usage.verifier_calls == 2 and budget.usage.flops > 0


def test_reward_model_stops_at_the_verifier_call_limit(reward_folder):
    got = RewardModel(reward_folder).score("q", [Candidate("a"), Candidate("b")], Budget(max_verifier_calls=1))
    assert math.isfinite(got[0]) and math.isnan(got[1])


def test_reward_model_path_errors_are_clear(tmp_path):
    with pytest.raises(ModelNotFound, match="neither config.json nor a .gguf"):
        RewardModel(str(tmp_path))


def test_llm_judge_is_the_yes_probability():
    model = tiny_model()
    judge = LLMJudge(model)
    cand = Candidate("The answer is 8.")
    budget = Budget()
    got = judge.score("Tom has 3 apples", [cand], budget)[0]
    prompt = judge.template.format(question="Tom has 3 apples", solution=cand.text)
    lp_yes, lp_no = model.score([prompt, prompt], ["Yes", "No"], Budget())
    assert abs(got - math.exp(lp_yes) / (math.exp(lp_yes) + math.exp(lp_no))) < 1e-6
    assert 0 < got < 1 and budget.usage.verifier_calls == 1


def test_llm_judge_binds_to_the_generator_model():
    judge = LLMJudge()
    with pytest.raises(ValueError, match="has no model"):
        judge.score("q", [Candidate("a")], Budget())
    model = tiny_model()
    judge.bind(model)
    assert judge.model is model
