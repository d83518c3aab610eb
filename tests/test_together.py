"""Problems run together: their model calls share decode batches, yet each problem spends and
draws exactly what it would alone."""

from dataclasses import asdict

import pytest

from fakes import ScriptedModel, tiny_model
from ponder.budget import Budget
from ponder.errors import ConfigError
from ponder.generator import Generator
from ponder.samplers import SelfConsistency
from ponder.search import BeamSearch
from ponder.types import Completion, SamplingParams
from ponder.verifiers import LLMJudge

PROMPTS = ["Tom has 3 apples and buys", "What is 2 + 2?", "A train leaves at noon and", "Sam"]


def count_passes(model) -> list[int]:
    """Forward passes of the network (prefills and decode steps alike), counted by a hook."""
    calls = []
    model.network.register_forward_hook(lambda *_: calls.append(1))
    return calls


def test_requests_decoded_together_draw_and_spend_what_they_would_alone():
    alone, together = tiny_model(0), tiny_model(0)
    alone.eos_ids = together.eos_ids = set()
    # different seeds, sizes, temperatures and budgets: request 2 may generate 20 tokens, and
    # request 3 (the shortest prompt) pays FLOPs for about 8 steps of its rows
    flops = alone.shape.forward_flops(3, 0) + 8 * alone.shape.decode_flops([12, 12])
    limits = ({}, {}, {"max_generated_tokens": 20}, {"max_flops": flops})
    requests = [
        ([p], SamplingParams(n=n, temperature=t, max_new_tokens=12, seed=s), limit)
        for p, n, t, s, limit in zip(PROMPTS, (3, 1, 2, 2), (0.9, 0.0, [0.5, 1.3], 1.0), (0, 1, 2, 3), limits)
    ]
    passes = count_passes(together)
    budgets = [Budget(**limit) for *_, limit in requests]
    merged = together.generate_many([(p, params, b) for (p, params, _), b in zip(requests, budgets)])
    merged_passes = len(passes)
    passes = count_passes(alone)
    for (p, params, limit), got, budget in zip(requests, merged, budgets):
        own = Budget(**limit)
        want = alone.generate(p, params, own)
        assert [[c.token_ids for c in row] for row in got] == [[c.token_ids for c in row] for row in want]
        assert [[c.finish_reason for c in row] for row in got] == [[c.finish_reason for c in row] for row in want]
        for a, b in zip(got[0], want[0]):
            assert a.logprobs == pytest.approx(b.logprobs, abs=1e-4)
        used, solo = asdict(budget.usage), asdict(own.usage)
        used.pop("seconds"), solo.pop("seconds")
        assert used == solo
    assert budgets[2].exhausted and sum(len(c.token_ids) for c in merged[2][0]) == 20
    assert budgets[3].exhausted and 0 < len(merged[3][0][0].token_ids) < 12
    assert merged_passes == 4 + 11  # four prefills, then one decode pass per step for all rows
    assert len(passes) > 2 * merged_passes  # alone: a prefill and its own decode passes per request


def test_a_benchmark_of_problems_together_gives_what_one_at_a_time_gives():
    search = BeamSearch(n=4, beam_width=2, max_steps=3, max_step_tokens=6, temperature=1.0, delimiter=" ")
    runs = {}
    for k in (1, 3):
        model = tiny_model(0)
        passes = count_passes(model)
        gen = Generator(model, search, LLMJudge(model), {"max_generated_tokens": 40})
        runs[k] = dict(gen.run_many(PROMPTS, together=k)), len(passes)
    (one, one_passes), (three, three_passes) = runs[1], runs[3]
    assert sorted(one) == sorted(three) == [0, 1, 2, 3]
    for i in range(4):
        assert [c.text for c in three[i].candidates] == [c.text for c in one[i].candidates]
        assert three[i].text == one[i].text
        assert three[i].usage.generated_tokens == one[i].usage.generated_tokens
    assert three_passes < one_passes  # the same work in fewer, wider passes


def test_a_failing_problem_is_handed_back_and_the_others_finish():
    class Flaky(ScriptedModel):
        def generate(self, prompts, params, budget):
            if prompts[0] == "q1":
                raise RuntimeError("model crashed")
            return super().generate(prompts, params, budget)

    gen = Generator(Flaky(["The answer is 0", "The answer is 2", "The answer is 3"]), SelfConsistency(n=1))
    out = dict(gen.run_many(["q0", "q1", "q2", "q3"], together=2))
    assert isinstance(out[1], RuntimeError) and [out[i].answer for i in (0, 2, 3)] == ["0", "2", "3"]
    with pytest.raises(ConfigError, match="together must be >= 1"):
        gen.run_many(["q0"], together=0)


def test_each_request_pays_for_its_own_rows_at_its_own_price():
    from ponder.decoding.owners import RowOwners

    cheap, dear = Budget(max_flops=25), Budget(max_flops=150)
    owners = RowOwners([cheap, dear], [None, None], owner=[0, 1, 0, 1, 0])
    # rows 0, 2, 4 are request 0's (10 FLOPs each: it pays for two), rows 1, 3 request 1's (100 each: one)
    assert owners.allow([0, 1, 2, 3, 4], [10, 100, 10, 100, 10]) == [0, 1, 2]
    owners.charge([0, 1, 2], generated_tokens=True, flops=[10, 100, 10])
    assert (cheap.usage.flops, cheap.usage.forward_passes, cheap.usage.generated_tokens) == (20, 1, 2)
    assert (dear.usage.flops, dear.usage.forward_passes, dear.usage.generated_tokens) == (100, 1, 1)
    with pytest.raises(ConfigError, match="one request at a time"):
        owners.alone("a speculative decoder")


def test_a_decoder_that_takes_one_request_at_a_time_is_served_them_in_turn():
    from fakes import tiny_network, tiny_tokenizer
    from ponder.models.hf import HFModel
    from ponder.samplers import Greedy
    from ponder.speculative import ngram

    fast = HFModel(tiny_network(0), tiny_tokenizer(), decoder=ngram(num_tokens=3))
    texts = {
        k: [r.text for _, r in sorted(Generator(fast, Greedy(max_new_tokens=10)).run_many(PROMPTS, together=k))]
        for k in (1, 4)
    }
    assert texts[4] == texts[1] and fast.decoder.stats["row_steps"] > 0


def test_answers_are_compared_by_math_verify_even_in_a_problems_thread():
    # 1/2 and 0.5 are one answer only to math-verify, whose timeout needs the main thread
    gen = Generator(
        ScriptedModel(["The answer is 3", "The answer is 1/2", "The answer is 0.5"] * 2), SelfConsistency(n=3)
    )
    out = dict(gen.run_many(["q0", "q1"], together=2))
    assert out[0].answer == out[1].answer == "1/2"


def test_no_result_is_lost_when_the_last_problems_end_while_the_caller_is_busy():
    import time

    from ponder.together import run_together

    class Calls:  # problem i makes i + 1 model calls, then ends
        def run(self, model, prompt, verifier, budget):
            for _ in range(int(prompt) + 1):
                model.generate([prompt], SamplingParams(), budget)
            return prompt

    got = []
    for i, result in run_together(ScriptedModel(["x"] * 9), None, Calls(), ["0", "1", "2"], lambda i: Budget(), 3):
        time.sleep(0.2)  # a slow caller (writing results): the last problem's thread ends meanwhile
        got.append((i, result))
    assert got == [(0, "0"), (1, "1"), (2, "2")]


def test_a_request_that_fails_a_merged_call_fails_only_its_own_problem():
    from ponder.samplers import Greedy

    model = tiny_model(0)
    prefill = model.prefill

    def picky(ids, budget):
        if "bad" in model.tokenizer.decode(ids):
            raise ValueError("cannot prefill this prompt")
        return prefill(ids, budget)

    gen = Generator(model, Greedy(max_new_tokens=6))
    alone = dict(gen.run_many(PROMPTS, together=1))
    model.prefill = picky
    out = dict(gen.run_many(PROMPTS[:2] + ["a bad prompt"] + PROMPTS[2:], together=5))
    assert isinstance(out[2], ValueError)
    assert [out[i].text for i in (0, 1, 3, 4)] == [alone[i].text for i in range(4)]


class PerPrompt(ScriptedModel):
    """Prompt q<i>'s n samples give one answer when i is even, n distinct ones when odd (n - 1 or
    n(n-1)/2 answer comparisons: problems finish comparing at different times); records the
    requests per model call."""

    def __init__(self):
        super().__init__([])
        self.batches = []

    def generate(self, prompts, params, budget, _batched=False):
        if not _batched:
            self.batches.append(1)
        budget.charge(generated_tokens=params.n * len(prompts))
        kinds = [1 if int(p[1:]) % 2 == 0 else params.n for p in prompts]
        return [
            [Completion(f"The answer is {j % k + 1}", [1], [-1.0], "stop", 0.7) for j in range(params.n)] for k in kinds
        ]

    def generate_many(self, requests):
        self.batches.append(len(requests))
        return [self.generate(*r, _batched=True) for r in requests]


def test_answer_comparisons_do_not_hold_up_the_batch():
    """Problems compare their answers (math-verify) in the main thread as they ask, so the next
    wave starts together: every generate call serves `together` problems. (Comparisons used to
    queue with generation: a problem still comparing let a new problem's generate go alone.)"""
    model = PerPrompt()
    gen = Generator(model, SelfConsistency(n=6))
    results = dict(gen.run_many([f"q{i}" for i in range(8)], together=4))
    assert sorted(results) == list(range(8)) and all(r.answer == "1" for r in results.values())
    assert model.batches == [4, 4]
