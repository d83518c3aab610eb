"""The plain token loop: one forward pass per new token for every unfinished row."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ponder.budget import ModelShape
from ponder.decoding.owners import RowOwners
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
    """Autoregressive decoding, the reference every faster decoder must match. Its rows may
    belong to several requests (`RowOwners`), each paying and drawing for its own."""

    merges_requests = True

    def decode(self, network, batch: DecodeBatch, stop: StopRule, shape: ModelShape, owners: RowOwners,
               top_p: float, top_k: int) -> list[RowOutput]:
        rows = len(batch.lengths)
        outs = [RowOutput([], []) for _ in range(rows)]
        active = list(range(rows))  # batch position -> row
        lengths, mask, logits, cache = list(batch.lengths), batch.attention_mask, batch.last_logits, batch.cache
        temps = batch.temperatures
        # the first token comes from the prefill's logits: it costs tokens, not a forward pass
        allowed = owners.allow(active, [0.0] * rows, forward=False)  # positions in `active`
        while True:
            for j in set(range(len(active))) - set(allowed):
                outs[active[j]].finish_reason = "budget"
            if not allowed:
                break
            index = torch.tensor(allowed, device=mask.device)
            tokens, logprobs = owners.sample(logits[index], temps[index], [active[j] for j in allowed], top_p, top_k)
            owners.charge([active[j] for j in allowed], generated_tokens=True)
            going = []  # (position in `active`, the token it just took) of rows not yet stopped
            for j, tok, lp in zip(allowed, tokens.tolist(), logprobs.tolist()):
                out = outs[active[j]]
                out.token_ids.append(tok)
                out.logprobs.append(lp)
                out.finish_reason = stop.check(out.token_ids)
                if out.finish_reason is None:
                    going.append((j, tok))
            paid = owners.allow([active[j] for j, _ in going], [shape.decode_flops([lengths[j] + 1]) for j, _ in going])
            for i in set(range(len(going))) - set(paid):
                outs[active[going[i][0]]].finish_reason = "budget"
            keep = [going[i][0] for i in paid]
            if not keep:
                break
            if len(keep) < len(active):
                index = torch.tensor(keep, device=mask.device)
                cache.batch_select_indices(index)
                mask, temps = mask[index], temps[index]
            tokens = torch.tensor([going[i][1] for i in paid], device=mask.device)
            active = [active[j] for j in keep]
            lengths = [lengths[j] + 1 for j in keep]
            mask = torch.cat([mask, mask.new_ones(len(active), 1)], dim=1)
            positions = torch.tensor(lengths, device=mask.device)[:, None] - 1
            with torch.inference_mode():
                out = network(input_ids=tokens[:, None], attention_mask=mask, position_ids=positions,
                              past_key_values=cache, use_cache=True)
            logits = out.logits[:, -1].float()
            owners.charge(active, flops=[shape.decode_flops([n]) for n in lengths])
            allowed = list(range(len(active)))
        return outs
