"""The vLLM backend behind everything above the contract: configs, strategies, verifiers on the
same engine, problems together, and the real small model loading to the same logits as on HF.
(The contract itself: test_contract.py.)"""

import json
import math
import os
import subprocess
import sys
import uuid

import pytest
import torch
from safetensors.torch import save_file

from ponder import Budget, Generator, SamplingParams
from ponder.errors import PonderError
from ponder.models import load_model
from ponder.models.loading import valid_checkpoint

VLLM = {"dtype": "fp32", "max_model_len": 1024, "kv_cache_gb": 0.25}
ENGINE = ["model.backend=vllm", *(f"model.vllm.{k}={v}" for k, v in VLLM.items())]


def test_a_strategy_runs_on_vllm_from_the_config_under_its_budget(engine_folder):
    gen = Generator.from_overrides(
        [
            f"model.path={engine_folder}",
            *ENGINE,
            "strategy=self_consistency",
            "strategy.n=4",
            "strategy.max_new_tokens=12",
            "budget.max_generated_tokens=30",
        ]
    )
    assert gen.model.capabilities.backend == "vllm"
    res = gen("Tom has 3 apples and buys 5 more.")
    assert len(res.candidates) >= 2 and res.usage.generated_tokens <= 30
    assert sum(len(c.completion.token_ids) for c in res.candidates) == res.usage.generated_tokens


def test_step_search_with_the_llm_judge_on_the_same_engine(engine_folder):
    gen = Generator.from_overrides(
        [
            f"model.path={engine_folder}",
            *ENGINE,
            "strategy=beam_search",
            "strategy.n=4",
            "strategy.beam_width=2",
            "strategy.max_steps=2",
            "strategy.max_step_tokens=6",
            "strategy.delimiter=a",
            "verifier=llm_judge",
            "budget.max_flops=5e8",
        ]
    )
    assert gen.verifier.model is gen.model  # the judge scores on the generator's own engine
    res = gen("Tom has 3 apples and buys 5 more.")
    assert res.usage.verifier_calls > 0 and res.usage.flops <= 5e8 and res.trace
    scored = [c.scores["prm"] for c in res.candidates if math.isfinite(c.scores["prm"])]
    assert scored and all(0.0 <= s <= 1.0 for s in scored)


def test_problems_run_together_give_what_each_gives_alone(engine_folder):
    gen = Generator.from_overrides(
        [
            f"model.path={engine_folder}",
            *ENGINE,
            "strategy=self_consistency",
            "strategy.n=3",
            "strategy.max_new_tokens=8",
        ]
    )
    prompts = ["Tom has 3 apples.", "Solve step by step.", "def f(x):"]
    alone = [gen(p) for p in prompts]
    together = dict(gen.run_many(prompts, together=3))
    for i, res in enumerate(alone):
        assert [c.completion.token_ids for c in together[i].candidates] == [
            c.completion.token_ids for c in res.candidates
        ]
        assert together[i].usage.generated_tokens == res.usage.generated_tokens


REPEATS = "one two three four five six seven eight " * 6  # n-gram lookups find what follows


def test_ngram_decoding_on_vllm_is_plain_greedy_in_fewer_passes_and_stops_at_the_token_limit(engine_folder):
    """decoder=ngram maps onto vLLM's own n-gram speculation: drafts are verified (several tokens
    a pass), greedy output is plain greedy token for token, and a token limit that falls inside an
    accepted draft is met exactly (the drafts a budget cannot pay for are trimmed before the step)."""
    spec = Generator.from_overrides([f"model.path={engine_folder}", *ENGINE, "decoder=ngram", "decoder.num_tokens=4"])
    plain = load_model(engine_folder, backend="vllm", vllm=VLLM)
    assert spec.model.speculation is not None and spec.model.engine is not plain.engine
    params = SamplingParams(n=2, max_new_tokens=40, temperature=0.0)
    prompts = [REPEATS, "Tom has 3 apples and buys"]
    fast, budget = spec.model.generate(prompts, params, Budget()), Budget()
    slow = plain.generate(prompts, params, budget)
    assert [[c.token_ids for c in r] for r in fast] == [[c.token_ids for c in r] for r in slow]
    flat = lambda out: [x for r in out for c in r for x in c.logprobs]  # noqa: E731
    assert flat(fast) == pytest.approx(flat(slow), abs=2e-3)
    used = Budget()
    spec.model.generate(prompts, params, used)
    assert used.usage.draft_tokens > 0 and used.usage.forward_passes < budget.usage.forward_passes
    assert used.usage.generated_tokens == budget.usage.generated_tokens
    for limit in range(5, 30, 3):
        cut = Budget(max_generated_tokens=limit)
        out = spec.model.generate([REPEATS], SamplingParams(max_new_tokens=40, temperature=0.0), cut)[0][0]
        assert len(out.token_ids) == limit == cut.usage.generated_tokens and out.finish_reason == "budget"
        assert out.token_ids == slow[0][0].token_ids[:limit]


def test_cached_blocks_held_for_pricing_are_all_given_back(engine_folder, monkeypatch):
    """A prompt's cached blocks are held from its pricing to its prefill so no step evicts what was
    paid for as cached; every path (served, refused by the budget, scored, failed) gives them back."""
    model = load_model(engine_folder, backend="vllm", vllm=VLLM)
    pool = model._scheduler.kv_cache_manager.block_pool
    held, touch = [], pool.touch
    monkeypatch.setattr(pool, "touch", lambda blocks: (held.append(len(blocks)), touch(blocks)))
    prompt = " ".join(["Tom has 3 apples and buys 5 more."] * 10)
    model.generate([prompt], SamplingParams(max_new_tokens=2, temperature=0.0), Budget())
    free = pool.get_num_free_blocks()
    held.clear()
    longer = prompt + " Then he eats 2."
    out = model.generate([longer], SamplingParams(n=3, max_new_tokens=3, temperature=0.0), Budget())
    assert all(len(c.token_ids) == 3 for c in out[0])
    refused = Budget(max_prompt_tokens=1)
    assert model.generate([longer + " And 1 more."], SamplingParams(max_new_tokens=3), refused)[0][0].token_ids == []
    assert not math.isinf(model.score([longer], ["Yes"], Budget())[0])
    assert math.isinf(model.score([longer + " No."], ["Yes"], Budget(max_prompt_tokens=1))[0])
    assert pool.get_num_free_blocks() == free and all(b.ref_cnt == 0 for b in pool.blocks if not b.is_null)
    assert held and all(held), held  # each priced prompt above held its cached blocks
    monkeypatch.setattr(model.engine, "step", lambda: (_ for _ in ()).throw(RuntimeError("step failed")))
    with pytest.raises(RuntimeError, match="step failed"):
        model.generate([longer + " And 2 more."], SamplingParams(n=2, max_new_tokens=3), Budget())
    monkeypatch.undo()
    assert pool.get_num_free_blocks() == free and all(b.ref_cnt == 0 for b in pool.blocks if not b.is_null)


def test_a_kv_cache_too_small_for_the_prefixes_held_stops_with_a_message_not_a_hang(engine_folder):
    """The next prompt cannot fit beside the cached prefixes held for the prompts queued behind it
    and nothing runs: vLLM would wait for ever; ponder says which setting to raise."""
    model = load_model(engine_folder, backend="vllm", vllm=VLLM | {"kv_cache_gb": 0.01})
    blocks = model._scheduler.kv_cache_manager.block_pool.num_gpu_blocks

    def sized(k: int) -> str:  # a prompt of 28 whole blocks and part of a 29th
        text = f"w{k}"
        while len(model.encode(text)) <= 28 * model.block:
            text += " Tom"
        return text

    cached = blocks // 29  # each takes 29 blocks to run; 28 of them stay cached and are held again
    assert blocks - 28 * cached < 29  # so the 29 blocks of an uncached prompt do not fit beside them
    prompts = [sized(k) for k in range(cached + 1)]
    for p in prompts[1:]:
        model.generate([p], SamplingParams(max_new_tokens=1, temperature=0.0), Budget())
    extended = [prompts[0]] + [p + " more" for p in prompts[1:]]
    with pytest.raises(PonderError, match="raise model.vllm.kv_cache_gb"):
        model.generate(extended, SamplingParams(max_new_tokens=4, temperature=0.0), Budget())
    budget = Budget()  # the engine is left clean: a prompt that fits runs
    assert len(model.generate([prompts[0]], SamplingParams(max_new_tokens=2), budget)[0][0].token_ids) == 2


def test_ponder_decoders_ask_for_the_hf_backend(engine_folder):
    with pytest.raises(PonderError, match="decoder=plain or decoder=ngram"):
        Generator.from_overrides([f"model.path={engine_folder}", *ENGINE, "decoder=early_exit"])
    with pytest.raises(PonderError, match="model.backend must be one of hf, vllm"):
        Generator.from_overrides([f"model.path={engine_folder}", "model.backend=tgi"])
    with pytest.raises(PonderError, match="model.vllm.max_model_len"):
        Generator.from_overrides([f"model.path={engine_folder}", "model.backend=vllm", "model.vllm.max_model_len=abc"])


def test_a_prompt_longer_than_the_context_is_refused_before_any_work(engine_folder):
    model = load_model(engine_folder, backend="vllm", vllm=VLLM)
    budget = Budget()
    with pytest.raises(PonderError, match="max_model_len=1024"):
        model.generate(["Tom " * 1100], SamplingParams(), budget)
    assert budget.usage.forward_passes == 0


def test_a_converted_folder_without_the_tied_embedding_is_not_valid(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"tie_word_embeddings": True}))
    save_file({"lm_head.weight": torch.zeros(4, 2)}, str(tmp_path / "model.safetensors"))
    assert not valid_checkpoint(tmp_path)  # what earlier conversions wrote: vLLM reads it as all zeros
    save_file({"model.embed_tokens.weight": torch.zeros(4, 2)}, str(tmp_path / "model.safetensors"))
    assert valid_checkpoint(tmp_path)


@pytest.mark.real_model
def test_smollm2_gives_the_same_tokens_and_logprobs_on_vllm_as_on_hf():
    """The converted checkpoint is valid for both engines (SmolLM2 ties its embeddings)."""
    hf = load_model("smollm2-135m", dtype="fp32")
    vl = load_model("smollm2-135m", backend="vllm", vllm=VLLM)
    prompt = hf.chat("What is 2 + 3? Answer briefly.")
    params = SamplingParams(temperature=0.0, max_new_tokens=24)
    a, b = hf.generate([prompt], params, Budget())[0][0], vl.generate([prompt], params, Budget())[0][0]
    assert b.token_ids == a.token_ids and b.text == a.text and "5" in b.text
    assert b.logprobs == pytest.approx(a.logprobs, abs=2e-3)
    assert vl.shape == hf.shape  # FLOPs from the config equal those of the loaded network


def processes_with(marker: str) -> list[int]:
    """Pids of live processes whose environment holds `marker` (children inherit it)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except OSError:  # gone, or not ours to read
            continue
    return found


def test_ponder_run_on_vllm_answers_quietly_and_leaves_no_process_behind(engine_folder):
    marker = f"PONDER_TEST_RUN={uuid.uuid4().hex}"
    env = dict(os.environ, HYDRA_FULL_ERROR="0", PONDER_TEST_RUN=marker.split("=")[1])
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "ponder.cli",
            "run",
            f"model.path={engine_folder}",
            *ENGINE,
            "prompt=Tom has 3 apples",
            "strategy.n=2",
            "strategy.max_new_tokens=4",
            "output=json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["usage"]["generated_tokens"] <= 8
    assert "Traceback" not in r.stderr and "INFO" not in r.stderr
    for noise in ("Warning", "NUMA", "Loading safetensors", "Triton"):  # what vLLM and torch print on every start
        assert noise not in r.stderr, r.stderr
    assert processes_with(marker) == []


def test_vllm_imported_through_the_python_api_prints_nothing():
    # vLLM logs from some modules while it is still being imported, before its own logging is set
    # up (so its level setting does not reach them): the CPU build's Triton notice, for one.
    code = "from ponder.models.vllm import import_vllm; import_vllm(); import vllm.triton_utils, vllm.engine.llm_engine"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_LOGGING")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "", r.stderr


@pytest.mark.real_model
def test_an_old_conversion_without_the_tied_embedding_is_converted_again(tmp_path, monkeypatch):
    from ponder.models.loading import converted_gguf, file_sha256, resolve

    _, gguf = resolve("smollm2-135m")
    monkeypatch.setenv("PONDER_CACHE", str(tmp_path))
    old = tmp_path / "gguf" / file_sha256(gguf)[:24]
    old.mkdir(parents=True)
    (old / "config.json").write_text(json.dumps({"tie_word_embeddings": True}))
    save_file({"lm_head.weight": torch.zeros(4, 2)}, str(old / "model.safetensors"))  # what 0.1 wrote
    assert converted_gguf(gguf) == str(old) and valid_checkpoint(old)
