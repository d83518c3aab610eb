"""PRM training: Math-Shepherd labels from rollouts (exact on a scripted policy), and a trained
PRM that loads as verifier=prm and scores with its value head."""

import json
import math

import pytest
import torch

from fakes import ScriptedModel, tiny_model, tiny_network, tiny_tokenizer
from ponder.bench import resume_cache
from ponder.budget import Budget
from ponder.errors import ConfigError
from ponder.tasks import GSM8K
from ponder.tasks.base import Problem
from ponder.verifiers import ProcessRewardModel
from ponder.verifiers.prm import render_separated
from ponder.verifiers.prm_train import (
    L2_GRID,
    SEPARATOR,
    auc,
    auc_ci95,
    choose_depth,
    choose_l2,
    depth_grid,
    features,
    prm_network,
    rollout_labels,
    train_prm,
    within_auc,
)


def test_step_labels_are_the_share_of_rollouts_that_reach_the_answer():
    policy = ScriptedModel(
        [
            "Step A\n\nStep B\n\nThe answer is 8.",  # the sampled solution: 3 steps, right
            "The answer is 8.",
            "The answer is 5.",  # rollouts after step A: 1 of 2 right
            "The answer is 8.",
            "The answer is 8.",  # rollouts after step B: 2 of 2
        ]
    )
    problem = Problem("p0", "Tom has 3 apples and buys 5 more.", "8")
    [record] = rollout_labels(
        policy,
        GSM8K(),
        [problem],
        samples=1,
        rollouts=2,
        delimiter="\n\n",
        max_new_tokens=32,
        max_steps=8,
        temperature=0.8,
        seed=0,
        progress=False,
    )
    assert record["steps"] == ["Step A", "Step B", "The answer is 8."]
    assert record["labels"] == [0.5, 1.0, 1.0]  # the last step: the solution itself is right


def test_a_group_of_problems_is_labelled_in_two_backend_calls():
    policy = ScriptedModel(
        [
            "Step A\n\nThe answer is 8.",  # p0's solution: right
            "Step C\n\nStep D\n\nThe answer is 5.",  # p1's solution: wrong
            "The answer is 8.",
            "The answer is 8.",  # p0 after step A: 2 of 2 right
            "The answer is 4.",
            "The answer is 5.",  # p1 after step C: 1 of 2
            "The answer is 5.",
            "The answer is 5.",  # p1 after step D: 0 of 2
        ]
    )
    problems = [Problem("p0", "Tom has 3 apples and buys 5 more.", "8"), Problem("p1", "2 + 2?", "4")]
    records = rollout_labels(
        policy,
        GSM8K(),
        problems,
        samples=1,
        rollouts=2,
        delimiter="\n\n",
        max_new_tokens=32,
        max_steps=8,
        temperature=0.8,
        seed=0,
        progress=False,
        batch_problems=2,
    )
    assert [(r["problem"], r["labels"]) for r in records] == [("p0", [1.0, 1.0]), ("p1", [0.5, 0.0, 0.0])]
    assert len(policy.calls) == 2 and not policy.texts
    with pytest.raises(ConfigError, match="batch_problems"):
        rollout_labels(
            policy,
            GSM8K(),
            problems,
            samples=1,
            rollouts=2,
            delimiter="\n\n",
            max_new_tokens=32,
            max_steps=8,
            temperature=0.8,
            seed=0,
            progress=False,
            batch_problems=0,
        )


def test_auc_is_the_share_of_good_bad_pairs_ranked_right():
    good = torch.tensor([False, False, True, True, True])
    # pairs (good, bad): 0.35 beats 0.1 only, 0.8 beats both, 0.4 ties 0.4 and beats 0.1: (1 + 2 + 1.5) / 6
    assert auc(torch.tensor([0.1, 0.4, 0.35, 0.8, 0.4]), good) == pytest.approx(4.5 / 6)
    assert auc(torch.tensor([0.1, 0.2]), torch.tensor([True, True])) is None


def test_the_auc_interval_resamples_whole_problems():
    scores, good = torch.tensor([0.1, 0.9, 0.2, 0.8, 0.3, 0.1]), torch.tensor([False, True, False, True, False, True])
    lo, hi = auc_ci95(scores, good, ["a", "a", "b", "b", "c", "c"], draws=400)
    assert lo < auc(scores, good) < hi and lo >= 0.0 and hi == 1.0  # without problem c, every draw ranks perfectly
    # a problem's steps move together: with one problem holding both kinds, every draw is that problem
    assert auc_ci95(scores[:2], good[:2], ["a", "a"], draws=50) == (1.0, 1.0)
    assert auc_ci95(scores[:2], good[:2], ["a", "b"], draws=50)[0] == 1.0  # draws with one kind are left out


def test_the_l2_penalty_is_chosen_by_problem_grouped_cross_validation():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(160, 32, generator=g)
    groups = [f"p{i // 4}" for i in range(160)]  # 40 problems of 4 steps
    noise = torch.rand(160, generator=g).round()  # labels unrelated to the features
    l2, losses, logits = choose_l2(x, noise, groups, steps=100, lr=0.05, seed=0)
    # nothing to learn: a strong penalty, validated no better than a constant (log 2 for balanced 0/1)
    assert set(losses) == set(L2_GRID) and l2 >= 1.0 and losses[l2] > math.log(2) - 0.01
    assert losses[L2_GRID[0]] > losses[l2] + 0.1  # the weakest penalty fits the noise and validates worse
    signal = torch.sigmoid(3 * x[:, 0])  # soft labels that one feature explains
    l2, losses, logits = choose_l2(x, signal, groups, steps=100, lr=0.05, seed=0)
    assert l2 <= 0.1 and losses[l2] < losses[L2_GRID[-1]] - 0.2
    # the out-of-fold logits: each problem's steps scored by a head that never saw them
    assert losses[l2] == pytest.approx(torch.nn.functional.binary_cross_entropy_with_logits(logits, signal).item())
    assert auc(logits, signal > 0.5) > 0.9
    assert choose_l2(x[:4], signal[:4], groups[:4], steps=10, lr=0.05, seed=0) == (L2_GRID[-1], {}, None)


def test_within_problem_auc_ranks_each_problems_steps_against_its_own():
    scores = torch.tensor([0.9, 0.8, 0.1, 0.2, 0.3, 0.85])
    good = torch.tensor([True, False, True, False, True, True])
    # problem a ranks its pair right (1), b wrong (0), c holds one kind only (left out); pooled,
    # 0.9 and 0.85 beat both bad steps, 0.3 one, 0.1 none: (2 + 2 + 1 + 0) / 8
    assert within_auc(scores, good, ["a", "a", "b", "b", "c", "c"]) == 0.5
    assert auc(scores, good) == pytest.approx(5 / 8)
    assert within_auc(scores[4:], good[4:], ["c", "c"]) is None


def test_the_depth_kept_is_the_one_that_ranks_each_problems_steps_best():
    g = torch.Generator().manual_seed(0)
    groups = [f"p{i // 4}" for i in range(160)]  # 40 problems of 4 steps, two good and two bad
    y = torch.tensor([1.0, 0.0, 1.0, 0.0] * 40)
    level = torch.randn(40, generator=g).repeat_interleave(4)[:, None]  # a per-problem offset
    noise = torch.randn(160, 16, generator=g)
    feats = {
        2: noise + level,  # says which problem, nothing about which step
        4: noise + level + torch.nn.functional.pad((y[:, None] - 0.5) * 2, (0, 15)),  # feature 0 tells
        8: noise + level,
    }
    depth, cv = choose_depth(feats, y, groups, steps=100, lr=0.05, seed=0)
    assert depth == 4 and cv[4]["cv_within_problem_auc"] > 0.8
    assert all(abs(cv[d]["cv_within_problem_auc"] - 0.5) < 0.2 for d in (2, 8))
    # every problem's steps alike: nothing ranks within a problem, so the whole (deepest) body
    same = torch.tensor([float(i // 4 % 2) for i in range(160)])
    assert choose_depth(feats, same, groups, steps=20, lr=0.05, seed=0)[0] == 8


def test_a_trained_prm_loads_as_verifier_prm(tmp_path):
    model = tiny_model(0, chat=True)
    task = GSM8K(split="train", limit=3)
    m = train_prm(
        model,
        tmp_path,
        task,
        task.problems(),
        samples=2,
        rollouts=2,
        max_new_tokens=16,
        max_steps=3,
        heldout=0.34,
        steps=50,
        progress=False,
    )
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


def test_a_prm_reading_an_earlier_layer_is_saved_cut_to_that_depth(tmp_path):
    model = tiny_model(0, chat=True)
    task = GSM8K(split="train", limit=4)
    m = train_prm(
        model,
        tmp_path,
        task,
        task.problems(),
        samples=2,
        rollouts=1,
        max_new_tokens=16,
        max_steps=3,
        heldout=0.25,
        steps=20,
        progress=False,
        depths=[1],
    )
    assert (m["body_layers"], m["depth"], list(m["cv_by_depth"])) == (2, 1, [1])
    prm = ProcessRewardModel(str(tmp_path))
    assert len(prm.network.base_model.layers) == prm.network.config.num_hidden_layers == 1
    steps = ["2 + 2 = 4.", "The answer is 4."]
    got = prm.step_scores("Tom has 3 apples", [steps], Budget())[0]
    # independently: the whole body's output after layer 1, through its final norm and the head
    full, tokenizer = prm_network(model)
    ids = torch.tensor([prm.render("Tom has 3 apples", steps)[0]])
    h = full.base_model(input_ids=ids, output_hidden_states=True).hidden_states[1][0][ids[0] == prm.sep_id]
    w, b = prm.network.score.weight[1], prm.network.score.bias[1]
    assert got == pytest.approx(torch.sigmoid(full.base_model.norm(h) @ w + b).tolist(), abs=1e-5)
    # and the head was fit on what the cut body gives
    [fit_on] = features(full, tokenizer, [{"question": "Tom has 3 apples", "steps": steps}], None, [1])[1]
    ids = torch.tensor([render_separated(tokenizer, "Tom has 3 apples", steps, SEPARATOR, None)])
    cut_body = prm.network.base_model(input_ids=ids).last_hidden_state[0][ids[0] == prm.sep_id]
    assert torch.allclose(cut_body, fit_on, atol=1e-5)
    with pytest.raises(ConfigError, match=r"depths \(layers of tiny's 2 read\) must be between 1 and 2, got 3"):
        train_prm(
            model,
            tmp_path,
            task,
            task.problems(),
            samples=2,
            rollouts=1,
            max_new_tokens=16,
            max_steps=3,
            heldout=0.25,
            steps=20,
            progress=False,
            depths=[3],
        )
    assert depth_grid(30) == [4, 8, 15, 22, 30] and depth_grid(2) == [1, 2]


def test_a_prm_can_take_another_models_body(tmp_path):
    from ponder.models.hf import HFModel

    policy = tiny_model(0, chat=True)
    body = HFModel(tiny_network(1), tiny_tokenizer(True), name="body")
    task = GSM8K(split="train", limit=3)
    m = train_prm(
        policy,
        tmp_path,
        task,
        task.problems(),
        samples=1,
        rollouts=1,
        max_new_tokens=8,
        max_steps=2,
        heldout=0.34,
        steps=5,
        progress=False,
        body=body,
        batch_problems=3,
    )
    assert (m["base_model"], m["policy"]) == ("body", "tiny")
    prm = ProcessRewardModel(str(tmp_path))
    got = prm.network.base_model.layers[0].mlp.up_proj.weight
    assert torch.equal(got, body.network.model.layers[0].mlp.up_proj.weight)
    assert not torch.equal(got, policy.network.model.layers[0].mlp.up_proj.weight)


def test_train_prm_command(tiny_folder, tmp_path, capsys):
    from ponder.cli import main

    main(
        [
            "train-prm",
            f"model.path={tiny_folder}",
            f"out={tmp_path}",
            "problems=3",
            "samples=1",
            "rollouts=1",
            "max_new_tokens=8",
            "max_steps=2",
            "heldout=0.34",
            "steps=10",
            "depths=[1]",
        ]
    )
    out = capsys.readouterr().out
    assert "PRM saved to" in out and '"depth": 1' in out


def test_a_prm_retrained_in_place_is_another_prm_to_bench(tiny_folder, tmp_path):
    from omegaconf import OmegaConf

    from ponder.cli import RESULT_GROUPS, bench_settings, main

    prm = tmp_path / "prm"
    train = [
        "train-prm",
        f"model.path={tiny_folder}",
        f"out={prm}",
        "problems=3",
        "samples=1",
        "rollouts=1",
        "max_new_tokens=8",
        "max_steps=2",
        "heldout=0.34",
    ]
    main([*train, "steps=10"])
    cfg = OmegaConf.create({k: {"_target_": k} for k in RESULT_GROUPS})
    cfg.verifier.path = str(prm)
    first = bench_settings(cfg)
    assert first["verifier_trained"]["problems"] == 3
    results = tmp_path / "bench.jsonl"
    resume_cache(results, first, "results")
    results.write_text('{"id": "p0"}\n')
    main([*train, "steps=30"])  # the same labels (resumed), a head fit longer: another PRM in the same folder
    with pytest.raises(ConfigError, match="made with other settings"):
        resume_cache(results, bench_settings(cfg), "results")
    cfg.verifier.path = "Qwen/Qwen2.5-Math-PRM-7B"  # not a folder train-prm wrote: the config alone says it
    assert "verifier_trained" not in bench_settings(cfg)


def test_the_same_training_rerun_elsewhere_keeps_its_digest(tmp_path):
    from ponder.verifiers.prm_train import trained_prm

    metrics = {
        "problems": 168,
        "train_steps": 804,
        "depth": 4,
        "l2": 0.1,
        "train_step_auc": 0.78414351,
        "cv_by_depth": {"4": {"cv_within_problem_auc": 0.5448}},
        "seconds_total": 826.7,
    }
    digest = {}
    for name, change in [
        ("first", {}),
        (
            "float noise, new diagnostics, other wall time",
            {
                "train_step_auc": 0.78413498,
                "cv_by_depth": {"4": {"cv_within_problem_auc": 0.5434, "cv_step_auc_ci95": [0.57, 0.68]}},
                "seconds_total": 181.9,
            },
        ),
        ("another fit", {"train_step_auc": 0.7901}),
        ("other labels", {"train_steps": 803}),
    ]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "prm_train.json").write_text(json.dumps({**metrics, **change}))
        digest[name] = trained_prm(tmp_path / name)["metrics_sha1"]
    assert digest["float noise, new diagnostics, other wall time"] == digest["first"]
    assert len({digest["first"], digest["another fit"], digest["other labels"]}) == 3


def test_rollout_labels_resume_from_their_cache_and_refuse_other_settings(tmp_path):
    problems = [Problem("p0", "Tom has 3 apples and buys 5 more.", "8"), Problem("p1", "2 + 2?", "4")]
    cache = tmp_path / "labels.jsonl"
    kw = dict(
        samples=1,
        rollouts=1,
        delimiter="\n\n",
        max_new_tokens=32,
        max_steps=8,
        temperature=0.8,
        seed=0,
        progress=False,
        cache=cache,
    )

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
