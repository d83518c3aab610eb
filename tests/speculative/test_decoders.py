"""Every speculative decoder: greedy output identical to plain greedy token for token (batch >
1, rows accepting different numbers of tokens), sampled output distributed as the target's,
budget charged separately for drafts, clear errors for impossible setups."""

import copy
from collections import Counter

import pytest
import torch
from scipy.stats import chisquare

from fakes import assert_kept_kv, tiny_network, tiny_tokenizer
from ponder.budget import Budget
from ponder.errors import ConfigError
from ponder.models.hf import HFModel
from ponder.speculative import draft_model, early_exit, ngram
from ponder.types import SamplingParams

PROMPTS = ["Tom has 3 apples and buys 5 more. How many apples", "def f(x):", "Solve step by step. 2 + 2 ="]


def near_draft(scale=0.1):
    """The target with noise on its output layer: a draft that is often, not always, right."""
    net = tiny_network(0)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        net.lm_head.weight.add_(scale * torch.randn(net.lm_head.weight.shape, generator=g))
    return HFModel(net, tiny_tokenizer())


def decoders():
    return {
        "ngram": ngram(num_tokens=4, max_ngram=2),
        "early_exit": early_exit(exit_layer=1, num_tokens=3),
        "early_exit_tree": early_exit(exit_layer=1, num_tokens=3, tree_width=3),
        "draft_model": draft_model(near_draft(), num_tokens=3),
        "draft_model_tree": draft_model(near_draft(), num_tokens=2, tree_width=2),
        "draft_model_confident": draft_model(near_draft(), num_tokens=4, min_confidence=0.6),
        "early_exit_tree_confident": early_exit(exit_layer=1, num_tokens=3, tree_width=2, min_confidence=0.5),
        "draft_model_path_confident": draft_model(near_draft(), num_tokens=6, min_path_confidence=0.3),
        "unrelated_draft": draft_model(HFModel(tiny_network(1), tiny_tokenizer()), num_tokens=3),
        "self_draft": draft_model(HFModel(tiny_network(0), tiny_tokenizer()), num_tokens=5),
    }


def model(decoder=None, layers=2):
    return HFModel(tiny_network(0, layers=layers), tiny_tokenizer(), decoder=decoder)


@pytest.mark.parametrize("name", list(decoders()))
def test_greedy_output_is_plain_greedy_token_for_token(name):
    params = SamplingParams(n=2, temperature=0.0, max_new_tokens=40, stop=("####",))
    want = model().generate(PROMPTS, params, Budget())
    dec = decoders()[name]
    got = model(dec).generate(PROMPTS, params, Budget())
    for w_row, g_row in zip(want, got):
        for w, g in zip(w_row, g_row):
            assert g.token_ids == w.token_ids and g.finish_reason == w.finish_reason and g.text == w.text
            torch.testing.assert_close(torch.tensor(g.logprobs), torch.tensor(w.logprobs), atol=1e-4, rtol=1e-4)
    assert dec.stats["row_steps"] > 0


@pytest.mark.parametrize("name", ["ngram", "early_exit_tree", "draft_model_tree", "self_draft"])
def test_kept_completions_hold_the_kv_a_prefill_computes(name):
    """A search step's KV kept by a speculative decoder: rows stop part-way through an accepted
    path (the stop string), or run to the length limit, with rejected drafts between."""
    m = model(decoders()[name])
    params = SamplingParams(n=2, temperature=0.0, max_new_tokens=20, stop=("x/", " step"), extends=True)
    out = m.generate(PROMPTS, params, Budget())
    assert {c.finish_reason for row in out for c in row} == {"stop", "length"}
    for prompt, row in zip(PROMPTS, out):
        assert_kept_kv(m, prompt, row[0])


def test_a_perfect_draft_is_accepted_whole():
    dec = decoders()["self_draft"]
    # 37 tokens = the first + 6 steps of 6
    model(dec).generate(PROMPTS[:1], SamplingParams(n=1, temperature=0.0, max_new_tokens=37), Budget())
    assert dec.stats["emitted"] / dec.stats["row_steps"] == pytest.approx(6.0, abs=0.01)  # 5 drafted + bonus


def test_no_draft_runs_past_the_tokens_a_request_still_allows():
    dec = decoders()["self_draft"]  # 5 tokens a step, all accepted
    out = model(dec).generate(PROMPTS[:1], SamplingParams(n=1, temperature=0.0, max_new_tokens=10), Budget())
    assert len(out[0][0].token_ids) == 10
    # 1 token from the prefill, a step of 5 drafts + 1, then only 2 drafts + 1 are still needed
    assert dec.stats["row_steps"] == 2 and dec.stats["drafted"] == 7


def test_batch_rows_accept_different_numbers_of_tokens():
    """n-gram drafts hit on one row and miss on another in the same steps; both stay exact."""
    prompts = ["1 2 3 4 5 6 1 2 3 4 5 6 1 2 3", "Yes No Is the proposed solution correct?"]
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=30)
    dec = ngram(num_tokens=6)
    got = model(dec).generate(prompts, params, Budget())
    assert [c[0].token_ids for c in got] == [c[0].token_ids for c in model().generate(prompts, params, Budget())]
    assert dec.stats["emitted"] > dec.stats["row_steps"]  # something was accepted


def joint_distribution(net, prompt_ids, top_k, steps):
    """Exact P(t1..t_steps) of top-k sampling at temperature 1, by enumeration."""
    probs = {(): 1.0}
    for _ in range(steps):
        nxt = {}
        for seq, pr in probs.items():
            with torch.no_grad():
                logits = net(input_ids=torch.tensor([prompt_ids + list(seq)])).logits[0, -1]
            top = logits.topk(top_k)
            for tok, p in zip(top.indices.tolist(), torch.softmax(top.values, -1).tolist()):
                nxt[seq + (tok,)] = pr * p
        probs = nxt
    return probs


@pytest.mark.parametrize("name", ["draft_model", "ngram", "early_exit_tree"])
def test_sampled_output_has_the_targets_distribution(name):
    """Chi-square on the joint of the first 3 tokens (2 of them verified), fixed seed."""
    target = model(decoders()[name])
    ids = target.encode(PROMPTS[0])
    exact = joint_distribution(target.network, ids, top_k=3, steps=3)
    draws = 3000
    outs = target.generate(
        [PROMPTS[0]], SamplingParams(n=draws, temperature=1.0, top_k=3, max_new_tokens=3, seed=0), Budget()
    )[0]
    counts = Counter(tuple(c.token_ids) for c in outs)
    assert set(counts) <= set(exact)
    cells = sorted(exact, key=exact.get, reverse=True)
    big = [c for c in cells if exact[c] * draws >= 5]
    small = [c for c in cells if exact[c] * draws < 5]
    observed = [counts[c] for c in big] + ([sum(counts[c] for c in small)] if small else [])
    expected = [exact[c] for c in big] + ([sum(exact[c] for c in small)] if small else [])
    expected = [e * draws / sum(expected) for e in expected]  # exact up to float rounding
    # tolerance: exactness is rejected at p < 0.001; seeds are fixed so this cannot flake
    assert chisquare(observed, expected).pvalue > 1e-3


def test_draft_compute_is_charged_apart_and_rejections_count():
    dec = decoders()["draft_model"]
    budget = Budget()
    model(dec).generate(PROMPTS[:2], SamplingParams(n=1, temperature=0.0, max_new_tokens=20), budget)
    u = budget.usage
    assert u.draft_forward_passes > 0 and 0 < u.draft_flops < u.flops
    assert u.draft_tokens == dec.stats["drafted"] > u.generated_tokens - dec.stats["row_steps"]  # some rejected
    plain = Budget()
    model().generate(PROMPTS[:2], SamplingParams(n=1, temperature=0.0, max_new_tokens=20), plain)
    assert u.generated_tokens == plain.usage.generated_tokens and u.forward_passes < plain.usage.forward_passes


@pytest.mark.parametrize("name", ["ngram", "draft_model"])
def test_the_token_budget_stops_speculative_decoding_exactly(name):
    budget = Budget(max_generated_tokens=13)
    outs = model(decoders()[name]).generate(
        PROMPTS[:2], SamplingParams(n=2, temperature=0.0, max_new_tokens=40), budget
    )
    assert budget.usage.generated_tokens == 13 and budget.exhausted
    assert any(c.finish_reason == "budget" for row in outs for c in row)


def test_a_draft_with_another_tokenizer_is_refused():
    other = copy.deepcopy(tiny_tokenizer())
    other.add_tokens(["<extra>"])
    with pytest.raises(ConfigError, match="does not share the tokenizer"):
        model(draft_model(HFModel(tiny_network(1), other)))


def test_exit_layer_must_be_inside_the_model():
    with pytest.raises(ConfigError, match="exit_layer=2 must be below"):
        model(early_exit(exit_layer=2))


def test_decoder_config_group(tiny_folder):
    from ponder import Generator

    gen = Generator.from_overrides(
        [
            f"model.path={tiny_folder}",
            "decoder=ngram",
            "decoder.num_tokens=3",
            "strategy=greedy",
            "strategy.max_new_tokens=12",
        ]
    )
    plain = Generator.from_overrides([f"model.path={tiny_folder}", "strategy=greedy", "strategy.max_new_tokens=12"])
    assert gen("Tom has 3 apples").text == plain("Tom has 3 apples").text
    with pytest.raises(ConfigError, match="exit_layer"):
        Generator.from_overrides([f"model.path={tiny_folder}", "decoder=early_exit", "decoder.exit_layer=9"])


def test_real_smollm2_speculative_greedy_is_plain_greedy(smollm2):
    """The same guarantee on a real model: n-gram, early exit (a top-2 tree), Medusa heads
    (untrained: mostly rejected, still exact) and the model drafting for itself in bf16 (where
    the CPU runs bf16, two draft lengths), two prompts in one batch."""
    from ponder.models.cpu_linear import bf16_available
    from ponder.speculative import medusa
    from ponder.speculative.medusa import MedusaHeads

    prompts = [smollm2.chat("What is 12 times 7? Answer briefly."), smollm2.chat("Write a haiku about rain.")]
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=16)
    want = [r[0].token_ids for r in smollm2.generate(prompts, params, Budget())]
    cfg = smollm2.network.config
    torch.manual_seed(0)
    self_draft, longer = draft_model("smollm2-135m", num_tokens=3), draft_model("smollm2-135m", num_tokens=6)
    for dec in (
        ngram(num_tokens=4),
        early_exit(exit_layer=20, num_tokens=3, tree_width=2),
        medusa(MedusaHeads(cfg.hidden_size, cfg.vocab_size, num_heads=3), tree_width=2),
        self_draft,
        longer,
    ):
        fast = HFModel(smollm2.network, smollm2.tokenizer, decoder=dec)
        assert [r[0].token_ids for r in fast.generate(prompts, params, Budget())] == want
    assert self_draft.proposer.draft.network.dtype == (torch.bfloat16 if bf16_available() else torch.float32)
    assert self_draft.stats["emitted"] > 1.5 * self_draft.stats["row_steps"]  # it mostly agrees with itself
    assert longer.proposer.draft is self_draft.proposer.draft  # two decoders naming one draft share its weights


def test_a_bad_draft_dtype_is_refused():
    with pytest.raises(ConfigError, match="decoder.draft_dtype must be one of"):
        draft_model(near_draft(), draft_dtype="int4")


def test_low_confidence_drafts_are_cut_short():
    sure, unsure = decoders()["draft_model"], draft_model(near_draft(), num_tokens=3, min_confidence=0.99)
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=20)
    for dec in (sure, unsure):
        model(dec).generate(PROMPTS[:2], params, Budget())
    assert unsure.stats["drafted"] < sure.stats["drafted"]
    # a draft ends with its first doubted token, which is kept: every step drafts at least one
    assert unsure.stats["drafted"] >= unsure.stats["row_steps"]


def test_a_draft_ends_where_its_path_probability_falls_below_min_path_confidence():
    """A model drafting for itself: its draft ends with the first token at which the product of
    its probabilities (the plain run's logprobs, summed) falls below the threshold."""
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=12)
    plain = model().generate(PROMPTS[:1], params, Budget())[0][0]
    cum = torch.tensor(plain.logprobs[1:4], dtype=torch.float64).cumsum(0)  # the first step drafts tokens 1, 2, 3
    threshold = float(((cum[1] + cum[2]) / 2).exp())  # between the path probabilities after 2 and 3 tokens
    dec = draft_model(HFModel(tiny_network(0), tiny_tokenizer()), num_tokens=6, min_path_confidence=threshold)
    lengths, propose = [], dec.proposer.propose

    def recording(*args):
        drafts = propose(*args)
        lengths.append(len(drafts[0]))
        return drafts

    dec.proposer.propose = recording
    got = model(dec).generate(PROMPTS[:1], params, Budget())[0][0]
    assert got.token_ids == plain.token_ids
    assert lengths[0] == 3  # the token that fell below is drafted, and kept


def test_a_bad_min_path_confidence_is_refused():
    with pytest.raises(ConfigError, match="decoder.min_path_confidence"):
        draft_model(near_draft(), min_path_confidence=1.5)
