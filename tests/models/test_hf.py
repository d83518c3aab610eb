import torch

from fakes import assert_kept_kv, tiny_model
from ponder import Budget, SamplingParams
from ponder.decoding.stops import StopRule


def hf_greedy(model, prompt, n_new):
    ids = torch.tensor([model.encode(prompt)])
    out = model.network.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=n_new,
        do_sample=False,
        eos_token_id=None,
        pad_token_id=0,
    )
    return out[0, ids.shape[1] :].tolist()


def test_greedy_equals_transformers_greedy_for_a_left_padded_batch():
    model = tiny_model()
    prompts = ["Tom has 3 apples", "Solve step by step. 2 + 2 = 4. 10 - 3"]
    model.eos_ids = set()  # run the full length so every token is compared
    out = model.generate(prompts, SamplingParams(n=2, temperature=0.0, max_new_tokens=12), Budget())
    for prompt, row in zip(prompts, out):
        expected = hf_greedy(model, prompt, 12)
        assert [c.token_ids for c in row] == [expected, expected]
        assert all(c.finish_reason == "length" for c in row)


def test_n_samples_share_one_prefill():
    model = tiny_model()
    prompt = "Tom has 3 apples and buys 5 more."
    budget = Budget()
    model.generate([prompt], SamplingParams(n=6, max_new_tokens=4, seed=0), budget)
    n = len(model.encode(prompt))
    assert budget.usage.prompt_tokens == n  # computed once, not 6 times
    assert budget.usage.forward_passes == 1 + 3  # prefill + decode steps for tokens 2..4


def test_prefix_cache_computes_only_the_extension_and_changes_nothing():
    prompt, step = "Tom has 3 apples", " and buys 5 more."
    cold = tiny_model()
    cold.eos_ids = set()
    expected = cold.generate([prompt + step], SamplingParams(temperature=0.0, max_new_tokens=8), Budget())
    warm = tiny_model()
    warm.eos_ids = set()
    warm.generate([prompt], SamplingParams(temperature=0.0, max_new_tokens=2), Budget())
    budget = Budget()
    got = warm.generate([prompt + step], SamplingParams(temperature=0.0, max_new_tokens=8), budget)
    shared = len(warm.encode(prompt))
    assert budget.usage.cached_prompt_tokens >= shared - 1
    assert budget.usage.prompt_tokens == len(warm.encode(prompt + step)) - budget.usage.cached_prompt_tokens
    assert got[0][0].token_ids == expected[0][0].token_ids


def test_seeded_sampling_reproduces_and_seeds_differ():
    model = tiny_model()
    params = lambda seed: SamplingParams(n=4, temperature=1.0, max_new_tokens=10, seed=seed)
    a = model.generate(["Tom has"], params(1), Budget())[0]
    b = model.generate(["Tom has"], params(1), Budget())[0]
    c = model.generate(["Tom has"], params(2), Budget())[0]
    assert [x.token_ids for x in a] == [x.token_ids for x in b]
    assert [x.token_ids for x in a] != [x.token_ids for x in c]


def test_logprobs_match_a_full_forward_pass():
    model = tiny_model()
    prompt = "Tom has 3 apples"
    comp = model.generate([prompt], SamplingParams(n=1, temperature=1.0, max_new_tokens=6, seed=3), Budget())[0][0]
    ids = model.encode(prompt) + comp.token_ids
    with torch.no_grad():
        lp = torch.log_softmax(model.network(torch.tensor([ids])).logits[0].float(), -1)
    n = len(model.encode(prompt))
    expected = [lp[n - 1 + i, t].item() for i, t in enumerate(comp.token_ids)]
    assert torch.allclose(torch.tensor(comp.logprobs), torch.tensor(expected), atol=1e-4)


def test_score_is_the_log_likelihood_of_the_continuation():
    model = tiny_model()
    prompt, cont = "Tom has 3", " apples and buys"
    got = model.score([prompt], [cont], Budget())[0]
    p, c = model.encode(prompt), model.encode(cont, special=False)
    with torch.no_grad():
        lp = torch.log_softmax(model.network(torch.tensor([p + c])).logits[0].float(), -1)
    expected = sum(lp[len(p) - 1 + i, t].item() for i, t in enumerate(c))
    assert abs(got - expected) < 1e-4


def test_stop_strings_cut_the_text_and_end_the_row():
    model = tiny_model()
    out = model.generate(["Tom has"], SamplingParams(n=1, temperature=0.0, max_new_tokens=30), Budget())[0][0]
    stop = out.text[3:6]  # something the greedy text is known to contain
    assert stop
    cut = model.generate(["Tom has"], SamplingParams(n=1, temperature=0.0, max_new_tokens=30, stop=[stop]), Budget())[
        0
    ][0]
    assert cut.finish_reason == "stop" and stop not in cut.text
    assert out.text.startswith(cut.text) and len(cut.token_ids) < 30


def test_stop_rule_eos_and_length():
    rule = StopRule(tiny_model().tokenizer, {7}, (), max_new_tokens=3)
    assert rule.check([1, 7]) == "stop"
    assert rule.check([1, 2]) is None
    assert rule.check([1, 2, 3]) == "length"


def test_per_sample_temperatures_are_recorded_and_zero_is_greedy():
    model = tiny_model()
    model.eos_ids = set()
    out = model.generate(["Tom has"], SamplingParams(n=3, temperature=[0.0, 1.5], max_new_tokens=8, seed=0), Budget())[
        0
    ]
    assert [c.temperature for c in out] == [0.0, 1.5, 0.0]
    assert out[0].token_ids == out[2].token_ids == hf_greedy(model, "Tom has", 8)


def test_generated_token_budget_is_enforced_exactly():
    model = tiny_model()
    model.eos_ids = set()
    budget = Budget(max_generated_tokens=10)
    out = model.generate(["Tom has"], SamplingParams(n=4, max_new_tokens=50, seed=0), budget)[0]
    assert sum(len(c.token_ids) for c in out) == 10 == budget.usage.generated_tokens
    assert all(c.finish_reason == "budget" for c in out) and budget.exhausted


def test_flop_and_forward_pass_budgets_stop_generation():
    model = tiny_model()
    model.eos_ids = set()
    budget = Budget(max_forward_passes=5)
    out = model.generate(["Tom has"], SamplingParams(n=2, max_new_tokens=50, seed=0), budget)[0]
    assert budget.usage.forward_passes == 5 and all(c.finish_reason == "budget" for c in out)
    assert [len(c.token_ids) for c in out] == [5, 5]  # prefill gives token 1, 4 decode steps the rest
    flops = model.shape.forward_flops(len(model.encode("Tom has")), 0) * 3
    budget = Budget(max_flops=flops)
    model.generate(["Tom has"], SamplingParams(n=1, max_new_tokens=50, seed=0), budget)
    assert budget.usage.flops <= flops and budget.exhausted


def test_a_prompt_the_budget_cannot_prefill_gets_an_empty_budget_completion():
    model = tiny_model()
    budget = Budget(max_prompt_tokens=1)
    out = model.generate(["Tom has 3 apples"], SamplingParams(n=2), budget)[0]
    assert [(c.text, c.finish_reason) for c in out] == [("", "budget"), ("", "budget")]
    assert budget.usage.forward_passes == 0


def test_chat_template_is_applied_when_the_model_has_one():
    assert tiny_model(chat=True).chat("hi") == "<user>hi<eos><assistant>"
    assert tiny_model().chat("hi") == "hi"


def test_with_decoder_shares_the_weights_and_keeps_the_settings():
    from ponder.speculative import ngram

    model = tiny_model(0, chat=True, max_batch_rows=3, prefix_cache_tokens=500, system_prompt="Be brief.")
    fast = model.with_decoder(ngram(num_tokens=3))
    assert fast.network is model.network and fast.decoder is not model.decoder
    assert (fast.max_batch_rows, fast.prefix_cache.max_tokens, fast.system_prompt) == (3, 500, "Be brief.")
    assert fast.chat("hi") == model.chat("hi")
    params = SamplingParams(max_new_tokens=12, temperature=0.0)
    assert [c.text for c in fast.generate(["hello"], params, Budget())[0]] == [
        c.text for c in model.generate(["hello"], params, Budget())[0]
    ]


def test_kept_completions_hold_the_kv_a_prefill_computes_and_serve_the_next_step():
    model = tiny_model()
    model.eos_ids = set()
    prompts = ["Tom has 3 apples", "Solve step by step. 2 + 2 = 4. 10 - 3"]  # left-padded together
    greedy = SamplingParams(temperature=0.0, max_new_tokens=8)
    first = model.generate(prompts[:1], greedy, Budget())[0][0]
    stop = model.tokenizer.decode(first.token_ids[2:3])  # the first row stops early, the second goes on
    model.prefix_cache.clear()
    out = model.generate(
        prompts, SamplingParams(temperature=0.0, max_new_tokens=8, stop=(stop,), extends=True), Budget()
    )
    assert len(out[0][0].token_ids) < len(out[1][0].token_ids)
    for prompt, [comp] in zip(prompts, out):
        assert_kept_kv(model, prompt, comp)
    # without extends nothing but the prompts is kept
    model.prefix_cache.clear()
    model.generate(prompts, greedy, Budget())
    assert sorted(len(e) for e in model.prefix_cache._entries.values()) == sorted(len(model.encode(p)) for p in prompts)


def test_a_chunked_prefill_changes_nothing_and_stops_at_the_seconds_limit():
    import time

    prompt = "Tom has 3 apples and buys 5 more. " * 8
    whole, chunked = tiny_model(), tiny_model()
    whole.eos_ids = chunked.eos_ids = set()
    chunked.prefill_chunk = 7
    params = SamplingParams(temperature=0.0, max_new_tokens=6)
    budget = Budget()
    expected = whole.generate([prompt], params, Budget())[0][0].token_ids
    assert chunked.generate([prompt], params, budget)[0][0].token_ids == expected
    assert budget.usage.prompt_tokens == len(chunked.encode(prompt)) and budget.usage.forward_passes == 1 + 5
    # one token a piece: a long prompt takes far longer than the 20 ms the budget allows
    slow = tiny_model()
    slow.prefill_chunk = 1
    budget = Budget(max_seconds=0.02)
    t0 = time.perf_counter()
    out = slow.generate(["apple " * 400], params, budget)[0]
    assert time.perf_counter() - t0 < 0.5 and budget.exhausted
    assert all(c.finish_reason == "budget" and not c.token_ids for c in out)
    assert 0 < budget.usage.prompt_tokens < len(slow.encode("apple " * 400))  # the pieces done are charged
