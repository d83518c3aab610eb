"""Speculative decoding inside the backend's token loop: a proposer drafts a token tree per
row, the target verifies every row's tree in one forward pass, `verify.accept` keeps what the
target's own distribution would have produced, and only the accepted path's KV entries stay.

Rows accept different numbers of tokens; their KV caches stay in one tensor with explicit
positions, and the slots a row does not use are masked out (as left padding already is).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from ponder.budget import ModelShape
from ponder.decoding.owners import RowOwners
from ponder.decoding.plain import DecodeBatch, RowOutput, save_kv
from ponder.decoding.sampling import processed_probs, sample_tokens
from ponder.decoding.stops import StopRule
from ponder.speculative.tree import ancestors, depths
from ponder.speculative.verify import accept


@contextmanager
def configured(network, layers: int | None, attention: str | None):
    """Run only the first `layers` decoder layers (then the final norm and lm_head: early
    exit), with the given transformers attention implementation."""
    cfg = network.config.get_text_config()
    full, impl = cfg.num_hidden_layers, network.config._attn_implementation
    if layers is not None:
        cfg.num_hidden_layers = layers
    if attention is not None:
        network.config._attn_implementation = attention
    try:
        yield
    finally:
        cfg.num_hidden_layers = full
        network.config._attn_implementation = impl


# Rows x cached slots from which ponder's kernel beat the model's SDPA in a whole verification
# pass of a Qwen2.5-Coder-1.5B-shaped model on an H100 (docs/speculative.md, "Tree-attention kernel"). Below
# it a pass is bound by the host, and a Triton launch costs the host more than SDPA's call.
KERNEL_MIN_SLOTS = 32 * 4096
AUTO = "auto"


def pick_attention(attention: str, device) -> str | None:
    """The attention implementation name for verification passes: "auto" on CUDA with triton
    installed stays "auto" (decided per pass by `pass_attention`); elsewhere the model's own."""
    from ponder.errors import ConfigError
    from ponder.speculative.kernels import register, triton_available

    if attention == "auto" and not (torch.device(device).type == "cuda" and triton_available()):
        attention = "model"
    names = {"auto": AUTO, "model": None, "triton": "ponder_tree", "reference": "ponder_tree_reference"}
    if attention not in names:
        raise ConfigError(f"decoder.attention must be one of {', '.join(names)}; got {attention!r}")
    if attention == "triton" and not triton_available():
        raise ConfigError("decoder.attention=triton needs triton: pip install 'ponder[triton]'")
    register()
    return names[attention]


def pass_attention(attention: str | None, rows: int, slots: int) -> str | None:
    """For one pass over `rows` rows of `slots` cached slots: "auto" takes the Triton kernel
    once the pass is wide enough for attention's GPU time to matter, else the model's own."""
    if attention != AUTO:
        return attention
    return "ponder_tree" if rows * slots >= KERNEL_MIN_SLOTS else None


class KVRows:
    """Rows of one KV cache: `mask` [rows, slots] marks real entries (left padding and the
    slots of rejected drafts are 0); `lengths` counts each row's real tokens. With `layers`,
    only the first that many layers run and are kept (early-exit drafting on a shared cache);
    `attention` names the transformers attention implementation its forward passes use."""

    def __init__(
        self,
        network,
        cache,
        mask: torch.Tensor,
        lengths: list[int],
        layers: int | None = None,
        attention: str | None = None,
    ):
        self.network, self.cache, self.mask, self.lengths = network, cache, mask, list(lengths)
        self.layers, self.attention = layers, attention
        self.want_hidden, self.hidden = False, None  # Medusa reads the last hidden states of a pass

    def forward(self, blocks: list[list[int]], parents: list[list[int]]) -> torch.Tensor:
        """Append each row's block (a token tree whose node 0 follows the row's context) and
        return the logits after every node [rows, width, vocab] (float32)."""
        rows, width, slots = len(blocks), max(len(b) for b in blocks), self.mask.shape[1]
        dev = self.mask.device
        ids = torch.zeros(rows, width, dtype=torch.long, device=dev)
        pos = torch.zeros(rows, width, dtype=torch.long, device=dev)
        tree = torch.zeros(rows, width, width, dtype=torch.bool, device=dev)
        for r, (block, par) in enumerate(zip(blocks, parents)):
            ids[r, : len(block)] = torch.tensor(block)
            pos[r, : len(block)] = self.lengths[r] + torch.tensor(depths(par))
            tree[r] = ancestors(par, width)
        seen = torch.cat([self.mask.bool()[:, None, :].expand(rows, width, slots), tree], dim=-1)
        dtype = self.network.dtype
        bias = torch.zeros(seen.shape, dtype=dtype, device=dev).masked_fill(~seen, torch.finfo(dtype).min)
        with torch.inference_mode(), configured(self.network, self.layers, pass_attention(self.attention, rows, slots)):
            if self.want_hidden:
                out = self.network.base_model(
                    input_ids=ids,
                    position_ids=pos,
                    attention_mask=bias[:, None],
                    past_key_values=self.cache,
                    use_cache=True,
                )
                self.hidden = out.last_hidden_state
                logits = self.network.get_output_embeddings()(self.hidden)
            else:
                logits = self.network(
                    input_ids=ids,
                    position_ids=pos,
                    attention_mask=bias[:, None],
                    past_key_values=self.cache,
                    use_cache=True,
                ).logits
        self._slots = slots
        return logits.float()

    def commit(self, keep: list[list[int]]) -> None:
        """After `forward`: keep, per row, these block nodes (in order) and drop the rest."""
        width = max(len(k) for k in keep)
        index = torch.zeros(len(keep), width, dtype=torch.long, device=self.mask.device)
        new = torch.zeros(len(keep), width, dtype=self.mask.dtype, device=self.mask.device)
        for r, k in enumerate(keep):
            index[r, : len(k)] = torch.tensor(k)
            new[r, : len(k)] = 1
            self.lengths[r] += len(k)
        for layer in self.cache.layers[: self.layers]:
            layer.keep_tail(self._slots, index)
        self.mask = torch.cat([self.mask, new], dim=1)

    def crop(self, slots: int) -> None:
        """Forget every slot from `slots` on (with the lengths they added)."""
        for layer in self.cache.layers[: self.layers]:
            layer.crop(slots)
        self.lengths = [n - int(self.mask[r, slots:].sum()) for r, n in enumerate(self.lengths)]
        self.mask = self.mask[:, :slots]

    def forget(self, counts: list[int]) -> None:
        """Per row, drop its last counts[r] real entries; slots no row uses any more are freed."""
        for r, n in enumerate(counts):
            if n:
                real = self.mask[r].nonzero()[:, 0]
                self.mask[r, real[-n:]] = 0
                self.lengths[r] -= n
        used = self.mask.any(0).nonzero()
        self.crop(int(used[-1]) + 1 if len(used) else 0)

    def select(self, index: torch.Tensor) -> None:
        if self.hidden is not None:
            self.hidden = self.hidden[index]
        self.cache.batch_select_indices(index)
        self.mask = self.mask[index]
        self.lengths = [self.lengths[i] for i in index.tolist()]


class SpeculativeDecoder:
    """Decodes with a proposer's drafts, lossless: greedy output equals plain greedy output
    token for token, and sampled output has the target's distribution (`verify.accept`).

    A proposer has `propose(rows, contexts, temperatures, top_p, top_k, generator, budget, room)
    -> list[Draft]`, where `room` is the most draft tokens any row can still use (its tokens
    left under max_new_tokens, less the one every step emits itself; drafting past it is
    wasted), and may have `bind(model)`, `start(rows, prompts, budget)`, `commit(rows, paths,
    drafts)`, `select(index)` and `wants_hidden` (verification then keeps the last hidden
    states in `rows.hidden`). `stats` sums, over every call, the target's row-steps and
    the tokens they emitted (accepted drafts plus one), for the mean accepted per step.

    `attention`: "auto" (on CUDA, ponder's Triton tree-attention kernel for passes of at least
    KERNEL_MIN_SLOTS rows x cached slots, the model's own attention with the same float mask
    below that and off CUDA), "triton", "reference" (the PyTorch reference kernel) or "model".

    `acceptance`: "exact" (lossless, the default) or "typical" (Medusa's typical acceptance
    with `typical_threshold` and `typical_alpha`: lossy for sampled rows, still exact greedy).
    """

    merges_requests = False  # one request at a time: its rows' drafts share one budget and generator

    def __init__(
        self,
        proposer,
        attention: str = "auto",
        acceptance: str = "exact",
        typical_threshold: float = 0.09,
        typical_alpha: float = 0.3,
    ):
        from ponder.errors import ConfigError

        if acceptance not in ("exact", "typical"):
            raise ConfigError(f"decoder.acceptance must be 'exact' or 'typical'; got {acceptance!r}")
        self.typical = (typical_threshold, typical_alpha) if acceptance == "typical" else None
        self.proposer, self.attention_choice = proposer, attention
        self.stats = {"row_steps": 0, "emitted": 0, "drafted": 0}

    def bind(self, model) -> None:
        self.attention = pick_attention(self.attention_choice, model.device)
        if hasattr(self.proposer, "bind"):
            self.proposer.bind(model)

    def _call(self, name: str, *args):
        if hasattr(self.proposer, name):
            getattr(self.proposer, name)(*args)

    @torch.inference_mode()
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
        budget, generator = owners.alone("a speculative decoder")
        rows = len(batch.lengths)
        outs = [RowOutput([], []) for _ in range(rows)]
        # the first token comes from the prefill's logits, as in plain decoding
        allowed = budget.affordable_rows(rows, 0.0, forward=False)
        first, lps = sample_tokens(batch.last_logits[:allowed], batch.temperatures[:allowed], top_p, top_k, generator)
        budget.charge(generated_tokens=allowed)
        active = []
        for r in range(rows):
            if r >= allowed:
                outs[r].finish_reason = "budget"
                continue
            outs[r].token_ids.append(int(first[r]))
            outs[r].logprobs.append(float(lps[r]))
            outs[r].finish_reason = stop.check(outs[r].token_ids)
            if outs[r].finish_reason is None:
                active.append(r)
        kv = KVRows(network, batch.cache, batch.attention_mask, batch.lengths, attention=self.attention)
        kv.want_hidden = getattr(self.proposer, "wants_hidden", False)
        temps = batch.temperatures
        if len(active) < rows:
            if not active:
                return outs
            index = torch.tensor(active, device=temps.device)
            kv.select(index)
            temps = temps[index]
        self._call("start", kv, [batch.token_ids[r] for r in active], budget)
        while active:
            contexts = [list(batch.token_ids[r]) + outs[r].token_ids for r in active]
            room = max(stop.max_new_tokens - len(outs[r].token_ids) - 1 for r in active)
            drafts = self.proposer.propose(kv, contexts, temps, top_p, top_k, generator, budget, room)
            blocks = [[c[-1]] + d.tokens for c, d in zip(contexts, drafts)]
            flops = [shape.forward_flops(len(b), n) for b, n in zip(blocks, kv.lengths)]
            allowed = budget.affordable_rows(len(active), max(flops))
            if allowed < len(active):
                for r in active[allowed:]:
                    outs[r].finish_reason = "budget"
                if batch.keep_kv:
                    save_kv(batch, outs, [(r, j) for j, r in enumerate(active) if j >= allowed], kv.cache, kv.mask)
                if not allowed:
                    break
                index = torch.arange(allowed, device=temps.device)
                kv.select(index)
                self._call("select", index)
                active, drafts, blocks, temps = active[:allowed], drafts[:allowed], blocks[:allowed], temps[:allowed]
            logits = kv.forward(blocks, [d.parents for d in drafts])
            budget.charge(forward_passes=1, flops=sum(flops[: len(active)]))
            # greedy rows walk the argmax, which their logits give; only sampled rows need the
            # processed distribution
            sampled = (temps > 0).nonzero()[:, 0].tolist()
            probs = dict(enumerate(logits))
            if sampled:
                width, vocab = logits.shape[1:]
                probs.update(
                    zip(
                        sampled,
                        processed_probs(
                            logits[sampled].reshape(-1, vocab), temps[sampled].repeat_interleave(width), top_p, top_k
                        ).view(-1, width, vocab),
                    )
                )
            norm = logits.logsumexp(-1)  # [rows, width]: log-probabilities of emitted tokens only
            paths, going = [], []
            for j, r in enumerate(active):
                path, nxt = accept(probs[j], drafts[j], bool(temps[j] == 0), generator, self.typical)
                paths.append(path)
                out = outs[r]
                for node, tok in zip([0] + path, [drafts[j].tokens[c - 1] for c in path] + [nxt]):
                    if budget.affordable_rows(1, 0.0, forward=False) < 1:
                        out.finish_reason = "budget"
                        break
                    out.token_ids.append(tok)
                    out.logprobs.append(float(logits[j, node, tok] - norm[j, node]))
                    budget.charge(generated_tokens=1)
                    self.stats["emitted"] += 1
                    if (reason := stop.check(out.token_ids)) is not None:
                        out.finish_reason = reason
                        break
                if out.finish_reason is None:
                    going.append(j)
            self.stats["row_steps"] += len(active)
            self.stats["drafted"] += sum(len(d) for d in drafts)
            kv.commit([[0] + p for p in paths])
            self._call("commit", kv, paths, drafts)
            if batch.keep_kv and len(going) < len(active):
                left = set(range(len(active))) - set(going)
                save_kv(batch, outs, [(active[j], j) for j in left], kv.cache, kv.mask)
            if len(going) < len(active):
                if not going:
                    break
                index = torch.tensor(going, device=temps.device)
                kv.select(index)
                self._call("select", index)
                temps = temps[index]
                active = [active[j] for j in going]
        return outs
