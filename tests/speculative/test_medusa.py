"""Medusa heads: both checkpoint formats, decoding exact with them, and self-distillation
training that learns (and whose heads then load as decoder=medusa)."""

import json

import pytest
import torch

from fakes import tiny_network, tiny_tokenizer
from ponder.budget import Budget
from ponder.errors import ConfigError, ModelNotFound
from ponder.models.hf import HFModel
from ponder.speculative import medusa
from ponder.speculative.medusa import MedusaHeads
from ponder.speculative.medusa_train import train_medusa
from ponder.tasks import GSM8K
from ponder.types import SamplingParams

HIDDEN, VOCAB = 64, len(tiny_tokenizer())


def random_heads(share=True, seed=0, heads=3):
    torch.manual_seed(seed)
    m = MedusaHeads(HIDDEN, VOCAB, num_heads=heads, share_lm_head=share)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.1)
    return m


def test_ponder_format_round_trip(tmp_path):
    heads = random_heads(share=False)
    heads.save(tmp_path)
    back = MedusaHeads.load(tmp_path, HIDDEN, VOCAB)
    x, lm = torch.randn(5, HIDDEN), torch.nn.Linear(HIDDEN, VOCAB, bias=False)
    torch.testing.assert_close(back(x, lm), heads(x, lm))
    shared = MedusaHeads(HIDDEN, VOCAB, num_heads=2, draft_vocab=3)
    shared.draft_vocab.copy_(torch.tensor([5, 9, 11]))
    shared.save(tmp_path / "vocab")
    assert MedusaHeads.load(tmp_path / "vocab", HIDDEN, VOCAB).draft_vocab.tolist() == [5, 9, 11]


@pytest.mark.parametrize("weights", ["medusa_lm_head.safetensors", "medusa_lm_head.pt"])
def test_faster_decoding_format(tmp_path, weights):
    g = torch.Generator().manual_seed(0)
    state = {}
    for i in range(2):
        state[f"{i}.0.linear.weight"] = torch.randn(HIDDEN, HIDDEN, generator=g) * 0.1
        state[f"{i}.0.linear.bias"] = torch.randn(HIDDEN, generator=g) * 0.1
        state[f"{i}.1.weight"] = torch.randn(VOCAB, HIDDEN, generator=g) * 0.1
    if weights.endswith(".pt"):
        torch.save(state, tmp_path / weights)
    else:
        from safetensors.torch import save_file

        save_file(state, str(tmp_path / weights))
    (tmp_path / "config.json").write_text(
        json.dumps({"medusa_num_heads": 2, "medusa_num_layers": 1, "base_model_name_or_path": "tiny"})
    )
    heads = MedusaHeads.load(tmp_path, HIDDEN, VOCAB)
    x = torch.randn(4, HIDDEN)
    for i in range(2):  # what the FasterDecoding head computes, written out
        h = x + torch.nn.functional.silu(x @ state[f"{i}.0.linear.weight"].T + state[f"{i}.0.linear.bias"])
        torch.testing.assert_close(heads(x, None)[:, i], h @ state[f"{i}.1.weight"].T)


def test_bad_checkpoints_say_what_is_wrong(tmp_path):
    with pytest.raises(ModelNotFound, match="no Medusa heads"):
        MedusaHeads.load(tmp_path, HIDDEN, VOCAB)
    random_heads().save(tmp_path)
    with pytest.raises(ConfigError, match="ponder train-medusa"):
        MedusaHeads.load(tmp_path, HIDDEN + 1, VOCAB)
    with pytest.raises(ConfigError, match="only 3 Medusa heads"):
        HFModel(
            tiny_network(0),
            tiny_tokenizer(),
            decoder=medusa(str(tmp_path), choices=[[0], [0, 0], [0, 0, 0], [0, 0, 0, 0]]),
        )


@pytest.mark.parametrize("acceptance", ["exact", "typical"])
def test_medusa_greedy_is_plain_greedy(acceptance):
    params = SamplingParams(n=2, temperature=0.0, max_new_tokens=30)
    prompts = ["Tom has 3 apples", "def f(x):"]
    want = HFModel(tiny_network(0), tiny_tokenizer()).generate(prompts, params, Budget())
    dec = medusa(random_heads(), tree_width=3, acceptance=acceptance)
    got = HFModel(tiny_network(0), tiny_tokenizer(), decoder=dec).generate(prompts, params, Budget())
    assert [[c.token_ids for c in r] for r in got] == [[c.token_ids for c in r] for r in want]


def test_drafting_from_the_training_vocabulary():
    """With a draft vocabulary every drafted token comes from it, drafting costs the lm_head
    slice's FLOPs instead of the whole lm_head's, and greedy output is still plain greedy;
    vocab=full ignores it."""
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=30)
    prompts = ["Tom has 3 apples", "def f(x):"]
    want = HFModel(tiny_network(0), tiny_tokenizer()).generate(prompts, params, Budget())
    heads = random_heads()
    allowed = torch.arange(3, VOCAB, 7)
    restricted = MedusaHeads(HIDDEN, VOCAB, num_heads=3, draft_vocab=len(allowed))
    restricted.load_state_dict({**heads.state_dict(), "draft_vocab": allowed})
    drafted, flops = {}, {}
    for vocab in ("auto", "full"):
        dec = medusa(restricted, tree_width=2, vocab=vocab)
        model = HFModel(tiny_network(0), tiny_tokenizer(), decoder=dec)
        propose = dec.proposer.propose
        drafted[vocab] = set()

        def record(*a, seen=drafted[vocab], **kw):
            drafts = propose(*a, **kw)
            seen.update(t for d in drafts for t in d.tokens)
            return drafts

        dec.proposer.propose = record
        budget = Budget()
        got = model.generate(prompts, params, budget)
        assert [[c.token_ids for c in r] for r in got] == [[c.token_ids for c in r] for r in want]
        flops[vocab] = budget.usage.draft_flops / budget.usage.draft_forward_passes
    assert drafted["auto"] and drafted["auto"] <= set(allowed.tolist())
    assert not drafted["full"] <= set(allowed.tolist())
    assert flops["auto"] < flops["full"]
    with pytest.raises(ConfigError, match="decoder.vocab"):
        medusa(restricted, vocab="observed")


def test_training_learns_and_the_heads_decode(tmp_path):
    model = HFModel(tiny_network(0), tiny_tokenizer())
    questions = [p.question for p in GSM8K(split="train", limit=12, template="{question}")]
    m = train_medusa(
        model,
        tmp_path,
        questions,
        num_heads=2,
        max_new_tokens=24,
        epochs=12,
        lr=1e-2,
        batch_positions=32,
        heldout=0.25,
        progress=False,
    )
    assert m["last_loss"] < 0.7 * m["first_loss"] and len(m["heldout_top1_per_head"]) == 2
    answers = {
        t
        for r in map(json.loads, (tmp_path / "distill.jsonl").read_text().splitlines())
        for t in r["ids"][r["start"] :]
    }
    vocab = MedusaHeads.load(tmp_path, HIDDEN, VOCAB).draft_vocab.tolist()
    assert len(vocab) == m["draft_vocab_size"] and set(vocab) <= answers
    assert len(m["heldout_top1_per_head_draft_vocab"]) == 2
    assert (tmp_path / "medusa.safetensors").is_file() and (tmp_path / "medusa_train.json").is_file()
    dec = medusa(str(tmp_path), tree_width=2)
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=30)
    got = HFModel(tiny_network(0), tiny_tokenizer(), decoder=dec).generate([questions[0]], params, Budget())
    want = model.generate([questions[0]], params, Budget())
    assert got[0][0].token_ids == want[0][0].token_ids
    assert dec.stats["emitted"] > dec.stats["row_steps"]  # the trained heads' guesses are accepted


def test_training_reuses_its_data_and_checks_settings(tmp_path):
    """The answers are kept per batch: a stopped run answers only what is missing, a second run
    with other training settings answers nothing; the observed-vocabulary loss trains through
    fewer logits than the full one."""
    model = HFModel(tiny_network(0), tiny_tokenizer())
    questions = [p.question for p in GSM8K(split="train", limit=6, template="{question}")]
    kw = dict(num_heads=2, max_new_tokens=12, epochs=1, batch_positions=32, heldout=0.34, progress=False)
    first = train_medusa(model, tmp_path, questions, loss_vocab="observed", **kw)
    data = (tmp_path / "distill.jsonl").read_text().splitlines()
    assert len(data) == 6 and first["loss_vocab"] == "observed" and first["loss_vocab_size"] < VOCAB
    (tmp_path / "distill.jsonl").write_text("\n".join(data[:4]) + "\n" + data[4][:20])  # killed mid-write
    asked = []
    generate = model.generate
    model.generate = lambda prompts, *a: asked.extend(prompts) or generate(prompts, *a)
    again = train_medusa(model, tmp_path, questions, loss_vocab="observed", **kw)

    def answers(lines):
        return [{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in lines]

    assert len(asked) == 2 and answers((tmp_path / "distill.jsonl").read_text().splitlines()) == answers(data)
    assert again["heldout_top1_per_head"] == first["heldout_top1_per_head"]
    full = train_medusa(model, tmp_path, questions, **kw)  # auto: a small vocabulary takes the full loss
    assert len(asked) == 2 and full["loss_vocab_size"] == VOCAB
    with pytest.raises(ConfigError, match="other settings"):
        train_medusa(model, tmp_path, questions, **{**kw, "max_new_tokens": 13})
    with pytest.raises(ConfigError, match="share_lm_head=true"):
        train_medusa(model, tmp_path, questions, share_lm_head=False, loss_vocab="observed", **kw)


def test_train_medusa_command(tiny_folder, tmp_path, capsys):
    from ponder.cli import main

    main(
        [
            "train-medusa",
            f"model.path={tiny_folder}",
            f"out={tmp_path}",
            "problems=4",
            "max_new_tokens=8",
            "epochs=1",
            "num_heads=2",
            "heldout=0.25",
        ]
    )
    assert "heads saved to" in capsys.readouterr().out
    assert json.loads((tmp_path / "medusa_train.json").read_text())["num_heads"] == 2
