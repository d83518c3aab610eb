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

    cache: object  # transformers Cache holding [rows, kv_heads, prefix, head_dim]
    attention_mask: torch.Tensor  # [rows, prefix] 1 for real tokens, 0 for left padding
    lengths: list[int]  # real context length of each row
    last_logits: torch.Tensor  # [rows, vocab] float32: logits for each row's first new token
    temperatures: torch.Tensor  # [rows]
    token_ids: list[tuple[int, ...]] | None = None  # each row's prompt tokens (speculative proposers read them)
    keep_kv: list[bool] | None = None  # rows whose KV (prompt and tokens fed) to return in RowOutput.kv


def row_kv(cache, mask: torch.Tensor, position: int, length: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer, copies of the keys and values of the first `length` real entries (mask 1: not
    left padding, not a rejected draft) of the row at `position` of a batch cache,
    [1, kv_heads, length, head_dim]."""
    index = mask[position].nonzero()[:length, 0]
    return [
        (layer.keys[position : position + 1, :, index], layer.values[position : position + 1, :, index])
        for layer in cache.layers
    ]


def save_kv(batch: DecodeBatch, outs: list, rows, cache, mask: torch.Tensor) -> None:
    """For rows (row, position in the cache) leaving the batch whose KV was asked for: the KV of
    their prompt and every token but the last (the last was never fed)."""
    for r, position in rows:
        if batch.keep_kv[r] and len(outs[r].token_ids) > 1:
            outs[r].kv = row_kv(cache, mask, position, len(batch.token_ids[r]) + len(outs[r].token_ids) - 1)


@dataclass
class RowOutput:
    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str | None = None
    kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None  # with DecodeBatch.keep_kv: the KV of the
    # prompt and every token but the last


class PlainDecoder:
    """Autoregressive decoding, the reference every faster decoder must match. Its rows may
    belong to several requests (`RowOwners`), each paying and drawing for its own."""

    merges_requests = True

    def bind(self, model) -> None:
        pass  # plain decoding needs nothing of the model beyond what each call passes

    def decode(
        self,
        network,
        batch: DecodeBatch,
        stop: StopRule,
        shape: ModelShape,
        owners: RowOwners,
        top_p: float,
        top_k: int,
    ) -> list[RowOutput]:
        rows = len(batch.lengths)
        outs = [RowOutput([], []) for _ in range(rows)]
        active = list(range(rows))  # batch position -> row
        lengths, mask, logits, cache = list(batch.lengths), batch.attention_mask, batch.last_logits, batch.cache
        temps = batch.temperatures
        # the first token comes from the prefill's logits: it costs tokens, not a forward pass
        allowed = owners.allow(active, [0.0] * rows, forward=False)  # positions in `active`
        for r in set(range(rows)) - set(allowed):
            outs[r].finish_reason = "budget"
        while allowed:
            now = [active[j] for j in allowed]  # the rows taking a token
            if len(allowed) < len(active):  # only before the first pass: later every active row is paid for
                index = torch.tensor(allowed, device=mask.device)
                logits, temps_now = logits[index], temps[index]
            else:
                temps_now = temps
            tokens, logprobs = owners.sample(logits, temps_now, now, top_p, top_k)
            owners.charge(now, generated_tokens=True)
            going = []  # indices into `now` of rows not yet stopped
            for i, (r, tok, lp) in enumerate(zip(now, tokens.tolist(), logprobs.tolist())):
                out = outs[r]
                out.token_ids.append(tok)
                out.logprobs.append(lp)
                out.finish_reason = stop.check(out.token_ids)
                if out.finish_reason is None:
                    going.append(i)
            costs = [shape.decode_flops([lengths[allowed[i]] + 1]) for i in going]
            paid = [going[i] for i in owners.allow([now[i] for i in going], costs)]
            for i in set(going) - set(paid):
                outs[now[i]].finish_reason = "budget"
            if batch.keep_kv:  # rows leaving the batch hand back their KV before it is cut
                save_kv(batch, outs, [(now[i], allowed[i]) for i in set(range(len(now))) - set(paid)], cache, mask)
            if not paid:
                break
            keep = [allowed[i] for i in paid]  # positions in `active`
            if len(keep) < len(active):
                index = torch.tensor(keep, device=mask.device)
                cache.batch_select_indices(index)
                mask, temps = mask[index], temps[index]
            if len(paid) < len(now):
                tokens = tokens[torch.tensor(paid, device=tokens.device)]
            active = [active[j] for j in keep]
            lengths = [lengths[j] + 1 for j in keep]
            mask = torch.cat([mask, mask.new_ones(len(active), 1)], dim=1)
            positions = torch.tensor(lengths, device=mask.device)[:, None] - 1
            with torch.inference_mode():
                out = network(
                    input_ids=tokens[:, None],
                    attention_mask=mask,
                    position_ids=positions,
                    past_key_values=cache,
                    use_cache=True,
                )
            logits = out.logits[:, -1].float()
            owners.charge(active, flops=[shape.decode_flops([n]) for n in lengths])
            allowed = list(range(len(active)))
        return outs
