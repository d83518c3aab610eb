"""The plain token loop: one forward pass per new token for every unfinished row."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ponder.budget import Budget, ModelShape
from ponder.decoding.sampling import sample_tokens
from ponder.decoding.stops import StopRule


@dataclass
class DecodeBatch:
    """Rows ready to decode: prompts already prefilled, left-padded into one KV cache."""

    cache: object                  # transformers Cache holding [rows, kv_heads, prefix, head_dim]
    attention_mask: torch.Tensor   # [rows, prefix] 1 for real tokens, 0 for left padding
    lengths: list[int]             # real context length of each row
    last_logits: torch.Tensor      # [rows, vocab] float32: logits for each row's first new token
    temperatures: torch.Tensor     # [rows]
    token_ids: list[tuple[int, ...]] | None = None  # each row's prompt tokens (speculative proposers read them)


@dataclass
class RowOutput:
    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str | None = None


class PlainDecoder:
    """Autoregressive decoding, the reference every faster decoder must match."""

    def decode(self, network, batch: DecodeBatch, stop: StopRule, shape: ModelShape, budget: Budget,
               top_p: float, top_k: int, generator: torch.Generator) -> list[RowOutput]:
        rows = len(batch.lengths)
        outs = [RowOutput([], []) for _ in range(rows)]
        active = list(range(rows))  # batch position -> row
        lengths, mask, logits, cache = list(batch.lengths), batch.attention_mask, batch.last_logits, batch.cache
        temps = batch.temperatures
        # the first token comes from the prefill's logits: it costs tokens, not a forward pass
        allowed = budget.affordable_rows(rows, 0.0, forward=False)
        while active:
            for j in range(allowed, len(active)):
                outs[active[j]].finish_reason = "budget"
            tokens, logprobs = sample_tokens(logits[:allowed], temps[:allowed], top_p, top_k, generator)
            budget.charge(generated_tokens=allowed)
            keep = []
            for j, (tok, lp) in enumerate(zip(tokens.tolist(), logprobs.tolist())):
                out = outs[active[j]]
                out.token_ids.append(tok)
                out.logprobs.append(lp)
                out.finish_reason = stop.check(out.token_ids)
                if out.finish_reason is None:
                    keep.append(j)
            if not keep:
                break
            ctx = [lengths[j] + 1 for j in keep]
            allowed = budget.affordable_rows(len(keep), shape.decode_flops([max(ctx)]))
            for j in keep[allowed:]:
                outs[active[j]].finish_reason = "budget"
            keep = keep[:allowed]
            if not keep:
                break
            if len(keep) < len(active):
                index = torch.tensor(keep, device=mask.device)
                cache.batch_select_indices(index)
                mask, temps, tokens = mask[index], temps[index], tokens[index]
            active = [active[j] for j in keep]
            lengths = [lengths[j] + 1 for j in keep]
            mask = torch.cat([mask, mask.new_ones(len(active), 1)], dim=1)
            positions = torch.tensor(lengths, device=mask.device)[:, None] - 1
            with torch.inference_mode():
                out = network(input_ids=tokens[:, None], attention_mask=mask, position_ids=positions,
                              past_key_values=cache, use_cache=True)
            logits = out.logits[:, -1].float()
            budget.charge(forward_passes=1, flops=shape.decode_flops(lengths))
        return outs
