"""PRM training: Math-Shepherd labels from rollouts (exact on a scripted policy), and a trained
PRM that loads as verifier=prm and scores with its value head."""
import json

import pytest
import torch

from fakes import ScriptedModel, tiny_model
from ponder.budget import Budget
from ponder.tasks import GSM8K
from ponder.tasks.base import Problem
from ponder.verifiers import ProcessRewardModel
from ponder.verifiers.prm_train import SEPARATOR, rollout_labels, train_prm


def test_step_labels_are_the_share_of_rollouts_that_reach_the_answer():
    policy = ScriptedModel([
        "Step A\n\nStep B\n\nThe answer is 8.",            # the sampled solution: 3 steps, right
        "The answer is 8.", "The answer is 5.",             # rollouts after step A: 1 of 2 right
        "The answer is 8.", "The answer is 8.",             # rollouts after step B: 2 of 2
    ])
    problem = Problem("p0", "Tom has 3 apples and buys 5 more.", "8")
    [record] = rollout_labels(policy, GSM8K(), [problem], samples=1, rollouts=2, delimiter="\n\n",
                              max_new_tokens=32, max_steps=8, temperature=0.8, seed=0, progress=False)
    assert record["steps"] == ["Step A", "Step B", "The answer is 8."]
    assert record["labels"] == [0.5, 1.0, 1.0]  # the last step: the solution itself is right


def test_a_trained_prm_loads_as_verifier_prm(tmp_path):
    model = tiny_model(0, chat=True)
    task = GSM8K(split="train", limit=3)
    m = train_prm(model, tmp_path, task, task.problems(), samples=2, rollouts=2, max_new_tokens=16, max_steps=3,
                  heldout=0.34, steps=50, progress=False)
    assert m["train_steps"] > 0 and m["heldout_steps"] > 0 and 0 <= m["heldout_step_accuracy"] <= 1
    assert (tmp_path / "labels.jsonl").is_file() and json.loads((tmp_path / "prm_train.json").read_text())
    prm = ProcessRewardModel(str(tmp_path))
    assert prm.format == "token_classification"
    steps = ["2 + 2 = 4.", "The answer is 4."]
    got = prm.step_scores("Tom has 3 apples", [steps], Budget())[0]
    # independently: the body's hidden state at each separator through the saved head, sigmoid
    ids = torch.tensor([prm.render("Tom has 3 apples", steps)[0]])
    h = prm.network.base_model(input_ids=ids).last_hidden_state[0][ids[0] == prm.sep_id]
    w, b = prm.network.score.weight[1], prm.network.score.bias[1]
    assert got == pytest.approx(torch.sigmoid(h @ w + b).tolist(), abs=1e-5)
    assert SEPARATOR in prm.tokenizer.get_vocab()


def test_train_prm_command(tiny_folder, tmp_path, capsys):
    from ponder.cli import main

    main(["train-prm", f"model.path={tiny_folder}", f"out={tmp_path}", "problems=3", "samples=1", "rollouts=1",
          "max_new_tokens=8", "max_steps=2", "heldout=0.34", "steps=10"])
    assert "PRM saved to" in capsys.readouterr().out


def test_rollout_labels_resume_from_their_cache_and_refuse_other_settings(tmp_path):
    from ponder.errors import ConfigError

    problems = [Problem("p0", "Tom has 3 apples and buys 5 more.", "8"), Problem("p1", "2 + 2?", "4")]
    cache = tmp_path / "labels.jsonl"
    kw = dict(samples=1, rollouts=1, delimiter="\n\n", max_new_tokens=32, max_steps=8, temperature=0.8, seed=0,
              progress=False, cache=cache)

    class Dies(ScriptedModel):
        def generate(self, prompts, params, budget):
            if not self.texts:
                raise KeyboardInterrupt
            return super().generate(prompts, params, budget)

    first = Dies(["Step A\n\nThe answer is 8.", "The answer is 5."])  # only p0 is scripted
    with pytest.raises(KeyboardInterrupt):
        rollout_labels(first, GSM8K(), problems, **kw)  # killed on p1: p0's record is kept
    assert [json.loads(line)["labels"] for line in cache.read_text().splitlines()] == [[0.0, 1.0]]
    again = Dies(["The answer is 4."])  # p1 only: p0 comes from the cache
    records = rollout_labels(again, GSM8K(), problems, **kw)
    assert [(r["problem"], r["labels"]) for r in records] == [("p0", [0.0, 1.0]), ("p1", [1.0])]
    assert len(again.calls) == 1 and all(r["seconds"] >= 0 for r in records)
    with pytest.raises(ConfigError, match="other settings"):
        rollout_labels(again, GSM8K(), problems, **{**kw, "rollouts": 2})
