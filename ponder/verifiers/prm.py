"""Process reward models: a score for every step of a (partial) solution.

Two formats real hub PRMs use:

- `token_classification` (Qwen2.5-Math-PRM style): the conversation is rendered with the
  model's chat template, the steps joined and ended by a separator token (`<extra_0>`); a
  two-class head is read at every separator, score = P(class 1).
- `step_tag` (Math-Shepherd style): a causal LM reads "question step1 ки\\nstep2 ки\\n"; at every
  tag position the score is P(good) / (P(good) + P(bad)) over the two label tokens.
- `chat_turns` (RLHFlow style): each step is a user turn answered by the assistant with the good
  token ("+"); the score is P(good) / (P(good) + P(bad)) where the assistant's reply begins.

Step scores aggregate into one solution score by `last`, `min`, `prod` or `mean`.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ponder.budget import Budget
from ponder.errors import ConfigError, ModelNotFound
from ponder.models.prefix_cache import CachedPrefix, PrefixCache, cache_from
from ponder.types import Candidate
from ponder.verifiers.math import answers_equal, extract_answer
from ponder.verifiers.pooling import pooling_scorer

AGGREGATES = {"last": lambda s: s[-1], "min": min, "prod": math.prod, "mean": lambda s: sum(s) / len(s)}
QWEN_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."


def check_aggregate(key: str, how: str) -> str:
    """`how` if it names an aggregation of step scores, else a ConfigError naming `key`."""
    if how not in AGGREGATES:
        raise ConfigError(f"{key} must be one of {', '.join(AGGREGATES)}; got {how!r}")
    return how


def aggregate_scores(scores: Sequence[float], how: str) -> float:
    """One score for a solution from its step scores (NaN for no steps)."""
    return AGGREGATES[check_aggregate("verifier.aggregate", how)](list(scores)) if scores else float("nan")


def split_steps(text: str, delimiter: str = "\n\n") -> list[str]:
    return [s.strip() for s in text.split(delimiter) if s.strip()]


def render_separated(tokenizer, question: str, steps: Sequence[str], separator: str, system: str | None) -> list[int]:
    """The token_classification format: the conversation in the chat template (when there is
    one), the answer being the steps each followed by the separator token."""
    answer = "".join(s + separator for s in steps)
    if getattr(tokenizer, "chat_template", None):
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer(question + "\n" + answer)["input_ids"]


class StepScoring:
    """What every step-level verifier shares: answers, aggregation, and `score` for whole
    candidates (so a PRM also serves best-of-N)."""

    scores_steps = True
    needs_model = True  # a PRM's network, or the LLM judge's model
    same_answer = staticmethod(answers_equal)

    def bind(self, model) -> None:
        pass  # a PRM has its own network; the LLM judge overrides this to use the generator's model

    def extract_answer(self, text: str) -> str | None:
        return extract_answer(text)

    def score(self, prompt: str, candidates: Sequence[Candidate], budget: Budget) -> list[float]:
        steps = self.step_scores(prompt, [split_steps(c.text, self.delimiter) for c in candidates], budget)
        return [
            aggregate_scores(s, self.aggregate) if s and not any(x != x for x in s) else float("nan") for s in steps
        ]


class ProcessRewardModel(StepScoring):
    name = "prm"

    def __init__(
        self,
        path: str,
        format: str = "auto",
        aggregate: str = "min",
        delimiter: str = "\n\n",
        separator: str = "<extra_0>",
        step_tag: str = "ки",
        good: str = "+",
        bad: str = "-",
        system: str | None = QWEN_SYSTEM,
        dtype: str = "auto",
        device: str = "auto",
        max_length: int = 4096,
        cache_tokens: int = 32768,
        backend: str = "hf",
        vllm: dict | None = None,
    ):
        from transformers import AutoTokenizer

        from ponder.models.hf import model_shape
        from ponder.models.loading import pick_device, pick_dtype, placed, resolve

        check_aggregate("verifier.aggregate", aggregate)
        kind, where = resolve(path)
        if kind != "pretrained":
            raise ModelNotFound(f"verifier.path='{path}' must be a hub id or a folder with a process reward model")
        self.aggregate, self.delimiter, self.system, self.max_length = aggregate, delimiter, system, max_length
        dev = pick_device(device)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(where)
        except OSError as e:
            raise ModelNotFound(f"could not load the PRM '{path}': {e}") from None
        vocab = self.tokenizer.get_vocab()
        if format == "auto":
            format = "token_classification" if separator in vocab else "step_tag" if step_tag in vocab else None
            if format is None:
                raise ConfigError(
                    f"cannot tell the PRM format of '{path}': its vocabulary has neither the separator "
                    f"{separator!r} nor the step tag {step_tag!r}; set verifier.format and those tokens"
                )
        self.format = format
        if format == "token_classification":
            self.sep_id = self.token_id(separator, "verifier.separator")
        elif format in ("step_tag", "chat_turns"):
            if format == "step_tag":
                self.tag_id, self.step_tag = self.token_id(step_tag, "verifier.step_tag"), step_tag
            elif not getattr(self.tokenizer, "chat_template", None):
                raise ConfigError(
                    f"verifier.format=chat_turns needs a tokenizer with a chat template; '{path}' has none"
                )
            self.label_ids = [self.token_id(good, "verifier.good"), self.token_id(bad, "verifier.bad")]
            self.good = good
        else:
            raise ConfigError(
                f"verifier.format must be auto, token_classification, step_tag or chat_turns; got {format!r}"
            )
        self.scorer, self.cache = None, None
        if backend == "vllm":  # vLLM's pooling runner: every solution of a call in one engine run
            if format != "token_classification":
                raise ConfigError(
                    f"verifier.backend=vllm runs token_classification PRMs (Qwen2.5-Math-PRM format, what "
                    f"ponder train-prm saves) on vLLM's pooling runner; a {format} PRM is a causal LM read at "
                    f"its tags: use verifier.backend=hf"
                )
            self.scorer = pooling_scorer(where, dtype, vllm, per_token=True)
            self.shape = self.scorer.shape
            return
        if backend != "hf":
            raise ConfigError(f"verifier.backend must be hf or vllm; got {backend!r}")
        self.network = placed(self._load(where, format, pick_dtype(dtype, dev)), dev)
        self.shape, self.device = model_shape(self.network), dev
        self.cache = PrefixCache(cache_tokens) if cache_tokens > 0 else None

    def token_id(self, token: str, key: str) -> int:
        if token in self.tokenizer.get_vocab():
            return self.tokenizer.convert_tokens_to_ids(token)
        ids = self.tokenizer(token, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise ConfigError(f"{key}={token!r} is not a single token of this PRM's tokenizer ({ids})")
        return ids[0]

    @staticmethod
    def _load(where, format, dtype):
        from transformers import AutoModel, AutoModelForCausalLM, AutoModelForTokenClassification

        try:
            if format in ("step_tag", "chat_turns"):
                return AutoModelForCausalLM.from_pretrained(where, dtype=dtype)
            try:
                return AutoModelForTokenClassification.from_pretrained(where, dtype=dtype)
            except ValueError:  # a custom head class (Qwen2ForProcessRewardModel) ships its own code
                return AutoModel.from_pretrained(where, dtype=dtype, trust_remote_code=True)
        except OSError as e:
            raise ModelNotFound(f"could not load the PRM at {where}: {e}") from None

    def render_turns(self, question: str, steps: list[str]) -> tuple[list[int], list[int]]:
        """chat_turns: token ids of the whole conversation and, per step, the position whose
        logits predict the assistant's reply to it (found by rendering each prefix)."""
        conv, starts = [], []
        for k, step in enumerate(steps):
            conv.append({"role": "user", "content": f"{question} {step}" if k == 0 else step})
            starts.append(len(self.tokenizer.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)))
            conv.append({"role": "assistant", "content": self.good})
        enc = self.tokenizer(
            self.tokenizer.apply_chat_template(conv, tokenize=False),
            add_special_tokens=False,
            return_offsets_mapping=True,
        )
        spans = enc["offset_mapping"]
        return enc["input_ids"], [next(i for i, (a, b) in enumerate(spans) if b > s) - 1 for s in starts]

    def render(self, question: str, steps: list[str]) -> tuple[list[int], list[int]]:
        """Token ids of the conversation and the positions whose outputs score the steps."""
        if self.format == "chat_turns":
            return self.render_turns(question, steps)
        if self.format == "step_tag":
            ids, marker = (
                self.tokenizer(question + " " + "".join(f"{s} {self.step_tag}\n" for s in steps))["input_ids"],
                self.tag_id,
            )
        else:
            sep = self.tokenizer.convert_ids_to_tokens(self.sep_id)
            ids, marker = render_separated(self.tokenizer, question, steps, sep, self.system), self.sep_id
        return ids, [i for i, t in enumerate(ids) if t == marker]

    def _probs(self, logits: torch.Tensor) -> torch.Tensor:
        """P(good step) read at every position: [seq, labels or vocab] -> [seq]."""
        if self.format == "token_classification":
            return logits.float().softmax(-1)[:, 1]
        return logits[:, self.label_ids].float().softmax(-1)[:, 0]

    def step_scores(
        self, question: str, solutions: Sequence[list[str]], budget: Budget, known: Sequence[list[float]] | None = None
    ) -> list[list[float]]:
        """Per solution, one score in [0, 1] per step; NaN where the budget ran out. Scoring is
        causal, so a solution that extends one scored before (a search node after its parent)
        runs only its new tokens: the PRM keeps KV states and per-position scores in a prefix
        cache, and the budget pays for what is computed."""
        if self.scorer is not None:
            return self._pooled_step_scores(question, solutions, budget)
        out = []
        for i, steps in enumerate(solutions):
            if not steps:
                out.append([])
                continue
            ids, where, cut = self.prepared(question, steps)
            entry, shared = self.cache.lookup(ids) if self.cache and not cut else (None, 0)
            new = len(ids) - shared
            flops = self.shape.forward_flops(new, shared)
            if budget.affordable_verifier_calls(1) < 1 or not budget.can_prefill(new, flops):
                out.extend([[float("nan")] * len(s) for s in solutions[i:]])
                break
            probs = entry.output[:shared] if shared else torch.empty(0)
            if new:
                cache = cache_from(self.network.config, entry.kv if shared else [], shared)
                with torch.inference_mode():
                    logits = self.network(
                        input_ids=torch.tensor([ids[shared:]], device=self.device),
                        position_ids=torch.arange(shared, len(ids), device=self.device)[None],
                        past_key_values=cache,
                        use_cache=True,
                    )[0][0]
                probs = torch.cat([probs, self._probs(logits).cpu()])
                if self.cache is not None and not cut:
                    if cache.get_seq_length() != len(ids):  # a custom head class that ignores the cache
                        self.cache = None
                    else:
                        self.cache.put(CachedPrefix(tuple(ids), [(x.keys, x.values) for x in cache.layers], probs))
            budget.charge(
                verifier_calls=1,
                prompt_tokens=new,
                cached_prompt_tokens=shared,
                forward_passes=int(new > 0),
                flops=flops,
            )
            out.append(self.scored(steps, probs, where))
        return out

    def prepared(self, question: str, steps: list[str]) -> tuple[list[int], list[int], int]:
        """The rendered ids (their last max_length), the positions scoring the steps, and how
        many tokens were cut from the front."""
        ids, where = self.render(question, steps)
        cut = max(0, len(ids) - self.max_length)
        return ids[cut:], [w - cut for w in where if w >= cut], cut

    @staticmethod
    def scored(steps: list[str], probs: torch.Tensor, where: list[int]) -> list[float]:
        scores = probs[torch.tensor(where, dtype=torch.long)].tolist()
        # steps cut off by max_length lost their markers: they get no score of their own
        return [float("nan")] * (len(steps) - len(scores)) + scores

    def _pooled_step_scores(self, question: str, solutions: Sequence[list[str]], budget: Budget) -> list[list[float]]:
        """step_scores on vLLM: every solution of the call scored in one engine run."""
        prepared = [self.prepared(question, steps) if steps else None for steps in solutions]
        logits = iter(self.scorer.logits([p[0] for p in prepared if p], budget))
        out = []
        for steps, p in zip(solutions, prepared):
            got = next(logits) if p else None
            if p is None:
                out.append([])
            elif got is None:  # the budget ran out before this one
                out.append([float("nan")] * len(steps))
            else:
                out.append(self.scored(steps, self._probs(got), p[1]))
        return out
