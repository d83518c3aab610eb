"""The Hugging Face transformers backend: the reference and offline default.

Stateless for the caller: text in, completions out. The n samples of a prompt share one
prefill (its KV cache is expanded to n rows, not recomputed), and a prompt that extends an
earlier one computes only its new tokens (`PrefixCache`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import torch

from ponder.budget import Budget, ModelShape
from ponder.decoding.owners import RowOwners
from ponder.decoding.plain import DecodeBatch, PlainDecoder
from ponder.decoding.sampling import make_generator
from ponder.decoding.stops import StopRule
from ponder.errors import check_number
from ponder.models.kv_cache import preallocated_cache
from ponder.models.prompts import ChatPrompts, eos_ids
from ponder.models.prefix_cache import CachedPrefix, PrefixCache, cache_from
from ponder.protocols import Capabilities
from ponder.types import Completion, SamplingParams


def shape_from_config(config) -> ModelShape:
    """The FLOP model's shape of a causal LM from its config alone: the network is built on the
    meta device (no memory, no weights), so a backend whose weights live in another process
    (a vLLM worker, a remote server) charges exactly what the HF backend charges."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return model_shape(AutoModelForCausalLM.from_config(config))


def model_shape(network) -> ModelShape:
    """The FLOP model's shape of a network in this process (also a PRM's or ORM's)."""
    cfg = network.config.get_text_config()
    total = sum(p.numel() for p in network.parameters())
    embed = network.get_input_embeddings().weight.numel()
    tied = (
        network.get_output_embeddings() is not None
        and network.get_output_embeddings().weight is network.get_input_embeddings().weight
    )
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return ModelShape(
        params=total - embed + (embed if tied else 0),
        layers=cfg.num_hidden_layers,
        d_attn=cfg.num_attention_heads * head_dim,
        context=getattr(cfg, "max_position_embeddings", None),
    )


class HFModel(ChatPrompts):
    """A transformers causal LM behind ponder's LanguageModel contract."""

    capabilities = Capabilities("hf", ponder_decoders=True, local_network=True)
    prefill_chunk = 512  # prompt tokens per prefill piece: the seconds limit is checked between pieces

    def __init__(
        self,
        network,
        tokenizer,
        name: str = "model",
        decoder=None,
        max_batch_rows: int = 32,
        prefix_cache_tokens: int = 65536,
        system_prompt: str | None = None,
    ):
        self.network, self.tokenizer, self.name = network, tokenizer, name
        self.decoder = decoder or PlainDecoder()
        self.max_batch_rows = check_number("model.max_batch_rows", max_batch_rows, minimum=1, integer=True)
        check_number("model.prefix_cache_tokens", prefix_cache_tokens, minimum=0, integer=True)
        self.prefix_cache = PrefixCache(prefix_cache_tokens)
        self.system_prompt = system_prompt
        self.shape = shape_from_config(network.config)
        self.device = next(network.parameters()).device
        self.eos_ids = eos_ids(tokenizer, network.generation_config)
        self.decoder.bind(self)  # a speculative decoder checks the model and takes what it needs

    def with_decoder(self, decoder) -> "HFModel":
        """The same weights and settings behind another decoder (with its own prefix cache)."""
        return HFModel(
            self.network,
            self.tokenizer,
            name=self.name,
            decoder=decoder,
            max_batch_rows=self.max_batch_rows,
            prefix_cache_tokens=self.prefix_cache.max_tokens,
            system_prompt=self.system_prompt,
        )

    # -- prefill with prefix reuse ------------------------------------------------------
    def prefill(self, ids: list[int], budget: Budget) -> CachedPrefix | None:
        """KV state and last logits of `ids`, computing only what the prefix cache lacks.
        Returns None when the budget cannot pay for it."""
        if not ids:
            raise ValueError("cannot generate from an empty prompt")
        entry, shared = self.prefix_cache.lookup(ids)
        if entry is not None and shared == len(ids) and entry.output is not None:
            budget.charge(cached_prompt_tokens=len(ids))
            return entry
        shared = min(shared, len(ids) - 1)  # at least one token must run to get fresh logits
        new = len(ids) - shared
        flops = self.shape.forward_flops(new, shared)
        if not budget.can_prefill(new, flops):
            return None
        cache = cache_from(self.network.config, entry.kv if shared else [], shared)
        # in chunks, so the seconds limit is checked inside a long prompt too; the pieces are one
        # logical pass (charged as one forward pass, whatever the chunk size)
        for start in range(shared, len(ids), self.prefill_chunk):
            if start > shared and budget.remaining("seconds") <= 0:  # the pieces done were work: charged
                done = start - shared
                budget.charge(prompt_tokens=done, forward_passes=1, flops=self.shape.forward_flops(done, shared))
                budget.exhausted = True
                return None
            end = min(start + self.prefill_chunk, len(ids))
            x = torch.tensor([ids[start:end]], device=self.device)
            pos = torch.arange(start, end, device=self.device)[None]
            with torch.inference_mode():
                out = self.network(
                    input_ids=x, position_ids=pos, past_key_values=cache, use_cache=True, logits_to_keep=1
                )
        budget.charge(prompt_tokens=new, cached_prompt_tokens=shared, forward_passes=1, flops=flops)
        kv = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
        entry = CachedPrefix(tuple(ids), kv, out.logits[0, -1].float())
        self.prefix_cache.put(entry)
        return entry

    def _batch(
        self, rows: list[tuple[CachedPrefix, float]], room: int, keep_kv: list[bool] | None = None
    ) -> DecodeBatch:
        """Left-pad the prefixes of `rows` into one cache with `room` free slots per row."""
        width = max(len(p) for p, _ in rows)
        cache = preallocated_cache(self.network.config, room)
        for layer in range(len(rows[0][0].kv)):
            ks, vs = [], []
            for prefix, _ in rows:
                k, v = prefix.kv[layer]
                pad = (0, 0, width - len(prefix), 0)  # left-pad the sequence axis
                ks.append(torch.nn.functional.pad(k, pad))
                vs.append(torch.nn.functional.pad(v, pad))
            cache.update(torch.cat(ks), torch.cat(vs), layer)  # [rows, kv_heads, width, head_dim]
        mask = torch.zeros(len(rows), width, dtype=torch.long, device=self.device)
        for r, (prefix, _) in enumerate(rows):
            mask[r, width - len(prefix) :] = 1
        return DecodeBatch(
            cache=cache,
            attention_mask=mask,
            lengths=[len(p) for p, _ in rows],
            last_logits=torch.stack([p.output for p, _ in rows]),
            temperatures=torch.tensor([t for _, t in rows], device=self.device),
            token_ids=[p.tokens for p, _ in rows],
            keep_kv=keep_kv,
        )

    # -- the LanguageModel contract -----------------------------------------------------
    def generate(self, prompts: Sequence[str], params: SamplingParams, budget: Budget) -> list[list[Completion]]:
        """params.n completions for each prompt, in order. Rows the budget cannot pay for end
        with finish_reason "budget" (possibly with no tokens)."""
        return self.generate_many([(prompts, params, budget)])[0]

    def generate_many(
        self, requests: Sequence[tuple[Sequence[str], SamplingParams, Budget]]
    ) -> list[list[list[Completion]]]:
        """`generate` for several requests (prompts, params, budget) at once, what each returns
        in order. Requests with the same stop strings, length limit, top-p and top-k share decode
        batches, each paying from its own budget and drawing from its own seed (`RowOwners`); a
        decoder that takes one request at a time gets them one by one."""
        merge = self.decoder.merges_requests
        groups = defaultdict(list)
        for i, (_, params, _) in enumerate(requests):
            groups[(tuple(params.stop), params.max_new_tokens, params.top_p, params.top_k) if merge else i].append(i)
        results = [None] * len(requests)
        for members in groups.values():
            for i, out in zip(members, self._generate_together([requests[i] for i in members])):
                results[i] = out
        return results

    def _generate_together(self, requests) -> list[list[list[Completion]]]:
        first = requests[0][1]  # stop strings, length, top-p and top-k are the same for all
        stop = StopRule(self.tokenizer, self.eos_ids, first.stop, first.max_new_tokens)
        temps = [params.temperatures() for _, params, _ in requests]
        generators = [make_generator(params.seed, self.device) for _, params, _ in requests]
        prefixes = [[self.prefill(self.encode(p), budget) for p in prompts] for prompts, _, budget in requests]
        jobs = [
            (q, i, s)
            for q, (_, params, _) in enumerate(requests)
            for i, pre in enumerate(prefixes[q])
            if pre is not None
            for s in range(params.n)
        ]  # (request, prompt, sample)
        results = [[[None] * params.n for _ in prompts] for prompts, params, _ in requests]
        for start in range(0, len(jobs), self.max_batch_rows):
            chunk = jobs[start : start + self.max_batch_rows]
            batch = self._batch(
                [(prefixes[q][i], temps[q][s]) for q, i, s in chunk],
                first.max_new_tokens,
                [requests[q][1].extends for q, _, _ in chunk],
            )
            owners = RowOwners([budget for _, _, budget in requests], generators, [q for q, _, _ in chunk])
            outs = self.decoder.decode(self.network, batch, stop, self.shape, owners, first.top_p, first.top_k)
            for (q, i, s), out in zip(chunk, outs):
                if out.kv is not None:  # free to a later prompt that extends it; it has no logits of its own
                    self.prefix_cache.put(CachedPrefix(prefixes[q][i].tokens + tuple(out.token_ids[:-1]), out.kv, None))
                results[q][i][s] = Completion(
                    stop.text(out.token_ids),
                    out.token_ids,
                    out.logprobs,
                    out.finish_reason,
                    temps[q][s],
                    stop.matched(out.token_ids) if out.finish_reason == "stop" else None,
                )
        return [
            [[c or Completion("", [], [], "budget", temps[q][s]) for s, c in enumerate(row)] for row in rows]
            for q, rows in enumerate(results)
        ]

    def score(self, prompts: Sequence[str], continuations: Sequence[str], budget: Budget) -> list[float]:
        """log p(continuation | prompt) for each pair; -inf where the budget ran out."""
        scores = []
        for prompt, cont in zip(prompts, continuations, strict=True):
            p_ids, c_ids = self.encode(prompt), self.encode(cont, special=False)
            prefix = self.prefill(p_ids, budget)
            if prefix is None or not c_ids:
                scores.append(float("-inf") if prefix is None else 0.0)
                continue
            total = torch.log_softmax(prefix.output, -1)[c_ids[0]].item()
            if len(c_ids) > 1:
                flops = self.shape.forward_flops(len(c_ids) - 1, len(p_ids))
                if not budget.can_prefill(len(c_ids) - 1, flops):
                    scores.append(float("-inf"))
                    continue
                x = torch.tensor([c_ids[:-1]], device=self.device)
                pos = torch.arange(len(p_ids), len(p_ids) + len(c_ids) - 1, device=self.device)[None]
                with torch.inference_mode():
                    out = self.network(
                        input_ids=x,
                        position_ids=pos,
                        use_cache=True,
                        past_key_values=cache_from(self.network.config, prefix.kv),
                    )
                lp = torch.log_softmax(out.logits[0].float(), -1)  # [len(c)-1, vocab]
                total += lp.gather(-1, torch.tensor(c_ids[1:], device=self.device)[:, None]).sum().item()
                budget.charge(prompt_tokens=len(c_ids) - 1, forward_passes=1, flops=flops)
            scores.append(total)
        return scores
