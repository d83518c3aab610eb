"""Draft-model proposer: a small model sharing the target's tokenizer drafts `num_tokens`
tokens per row (Leviathan et al. 2023), as a chain carrying its probabilities, or with
`tree_width` > 1 as a top-k tree around its greedy chain (verified as deterministic proposals).
Its KV cache lives across steps; after verification only the entries of accepted tokens stay."""

from __future__ import annotations

import weakref

import torch

from ponder.decoding.sampling import draw, processed_probs
from ponder.errors import ConfigError, check_number
from ponder.models.loading import DTYPES
from ponder.speculative.decoder import KVRows
from ponder.speculative.tree import Draft, TokenTree


def draft_steps(
    kv: KVRows,
    blocks: list[list[int]],
    vocab: int,
    k: int,
    width: int,
    temps,
    top_p,
    top_k,
    generator,
    min_confidence: float = 0.0,
    min_path_confidence: float = 0.0,
) -> tuple[list[Draft], list[list[int]], int]:
    """Run a drafter on kv: feed each row's block (a chain ending in its pending token), then
    draft up to k tokens per row. Returns the drafts, the chain tokens fed back to the drafter,
    and the forward passes made. With width > 1 the drafts are the top-`width` tree around the
    greedy chain; otherwise chains sampled at the rows' temperatures, carrying their
    probabilities. A row's draft ends with the first token whose draft probability is below
    `min_confidence` (it is drafted already, and the target may still accept it; as
    transformers' assisted generation does), or at which the product of its draft
    probabilities so far (the draft's own estimate that the target accepts all of it) falls
    below `min_path_confidence`; drafting stops once every row's draft has ended."""
    logits = kv.forward(blocks, [list(range(len(b) - 1)) for b in blocks])
    kv.commit([list(range(len(b))) for b in blocks])
    last = logits[torch.arange(len(blocks)), torch.tensor([len(b) - 1 for b in blocks])]
    chosen, qs, ranked = [], [], []
    path = torch.ones(len(blocks), device=last.device)  # product of each row's draft probabilities
    alive = torch.ones(len(blocks), dtype=torch.bool, device=last.device)  # rows confident so far
    sure = torch.zeros(len(blocks), dtype=torch.long, device=last.device)  # their confident tokens
    greedy = bool((temps == 0).all())  # then no distribution is needed, only the argmax
    for step in range(k):
        last = last[:, :vocab]
        if last.shape[-1] < vocab:  # a draft vocabulary smaller than the target's
            last = torch.nn.functional.pad(last, (0, vocab - last.shape[-1]), value=float("-inf"))
        if width > 1:
            ranked.append(last.topk(width, -1).indices)
            x = ranked[-1][:, 0]
        elif greedy:
            x = last.argmax(-1)
        else:
            q = processed_probs(last, temps, top_p, top_k)
            x = torch.where(temps == 0, last.argmax(-1), draw(q, generator))
            qs.append(q)
        chosen.append(x)
        if min_confidence > 0 or min_path_confidence > 0:
            p = torch.softmax(last.float(), -1).gather(-1, x[:, None])[:, 0]
            path = path * p
            alive &= (p >= min_confidence) & (path >= min_path_confidence)
        sure += alive
        if step < k - 1 and alive.any():
            last = kv.forward([[t] for t in x.tolist()], [[] for _ in blocks])[:, 0]
            kv.commit([[0]] * len(blocks))
        else:
            break
    tokens = torch.stack(chosen, 1).tolist()
    keep = (sure + 1).clamp_max(len(chosen)).tolist()  # up to the first doubted token
    fed = [t[:-1] for t in tokens]
    if width > 1:
        tree, cands = TokenTree.top_k(width, len(chosen)), torch.stack(ranked, 1)  # [rows, depth, width]
        drafts = [tree.draft(c) for c in cands]
        cut = [Draft(d.tokens[: n * width], d.parents[: n * width]) for d, n in zip(drafts, keep)]
        return cut, fed, len(chosen)
    q = torch.stack(qs, 1) if qs else None  # [rows, depth, vocab]
    return (
        [
            Draft.chain(t[:n], None if q is None or temps[r] == 0 else q[r, :n])
            for r, (t, n) in enumerate(zip(tokens, keep))
        ],
        fed,
        len(chosen),
    )


# loaded drafts still in use, by (name, device, dtype, packing): decoders that name the same draft
# share its weights (a benchmark comparing draft settings holds one copy, not one per setting)
_loaded_drafts = weakref.WeakValueDictionary()


class ChainDrafter:
    """What the draft-model and early-exit proposers share: up to `num_tokens` tokens a step,
    as a chain or a top-`tree_width` tree, ending where `draft_steps`' stopping rules say."""

    def __init__(self, num_tokens: int, tree_width: int, min_confidence: float, min_path_confidence: float):
        self.k = check_number("decoder.num_tokens", num_tokens, minimum=1, integer=True)
        self.width = check_number("decoder.tree_width", tree_width, minimum=1, integer=True)
        self.min_confidence = check_number("decoder.min_confidence", min_confidence, 0, 1)
        self.min_path_confidence = check_number("decoder.min_path_confidence", min_path_confidence, 0, 1)

    def steps(self, kv: KVRows, blocks, k: int, temperatures, top_p, top_k, generator):
        """`draft_steps` with this drafter's settings (`self.vocab` is set by `bind`)."""
        return draft_steps(
            kv,
            blocks,
            self.vocab,
            k,
            self.width,
            temperatures,
            top_p,
            top_k,
            generator,
            self.min_confidence,
            self.min_path_confidence,
        )


class DraftModelProposer(ChainDrafter):
    """`draft`: a preset, hub id or path (loaded on the target's device, with packed weights when
    the target has them), or a loaded HFModel. Its tokenizer must be the target's.

    `draft_dtype`: the loaded draft's dtype. "auto" is bf16 when the target's weights are packed
    on a CPU with bf16 instructions (a token of a 0.5B draft then costs about half what it does in fp32),
    else the target's dtype. Any draft keeps decoding lossless: only the target's distribution
    decides what is emitted."""

    def __init__(
        self,
        draft,
        num_tokens: int = 4,
        tree_width: int = 1,
        min_confidence: float = 0.0,
        draft_dtype: str = "auto",
        min_path_confidence: float = 0.0,
    ):
        super().__init__(num_tokens, tree_width, min_confidence, min_path_confidence)
        self.spec = draft
        if draft_dtype != "auto" and draft_dtype not in DTYPES:
            raise ConfigError(f"decoder.draft_dtype must be one of auto, bf16, fp16, fp32; got {draft_dtype!r}")
        self.draft_dtype = draft_dtype
        self.kv = None

    def bind(self, model) -> None:
        from ponder.models import load_model
        from ponder.models.cpu_linear import bf16_available, is_packed

        draft, packed = self.spec, is_packed(model.network)
        if isinstance(draft, str):
            dtype = self.draft_dtype
            if dtype == "auto":
                dtype = "bf16" if packed and bf16_available() else str(model.network.dtype).split(".")[-1]
            name, device = draft, str(model.device)
            draft = _loaded_drafts.get((name, device, dtype, packed))
            if draft is None:
                draft = _loaded_drafts[name, device, dtype, packed] = load_model(
                    name, device=device, dtype=dtype, packed_weights="auto" if packed else "off"
                )
        if draft.tokenizer.get_vocab() != model.tokenizer.get_vocab():
            raise ConfigError(
                f"decoder.draft {draft.name!r} does not share the tokenizer of the target model "
                f"{model.name!r}; a draft model must use the same vocabulary (for example "
                f"qwen2.5-coder-0.5b drafting for qwen2.5-coder-1.5b), or use decoder=ngram / early_exit"
            )
        self.draft, self.vocab = draft, model.network.get_output_embeddings().weight.shape[0]

    def start(self, rows: KVRows, prompts, budget) -> None:
        meter = budget.draft_meter()
        prefixes = [self.draft.prefill(list(p), meter) for p in prompts]
        if any(p is None for p in prefixes):  # the budget cannot pay for the draft's prefill
            self.kv = None
            return
        batch = self.draft._batch([(p, 0.0) for p in prefixes], room=64)
        self.kv = KVRows(self.draft.network, batch.cache, batch.attention_mask, batch.lengths, attention=rows.attention)

    def propose(self, rows, contexts, temperatures, top_p, top_k, generator, budget, room) -> list[Draft]:
        meter, shape, k = budget.draft_meter(), self.draft.shape, min(self.k, room)
        blocks = [c[n:] for c, n in zip(contexts, self.kv.lengths)] if self.kv is not None else []
        flops = (
            sum(
                shape.forward_flops(len(b), n) + sum(shape.decode_flops([n + len(b) + i]) for i in range(k - 1))
                for b, n in zip(blocks, self.kv.lengths)
            )
            if blocks
            else 0.0
        )
        if self.kv is None or k < 1 or meter.affordable_rows(1, flops) < 1:
            self.fed = [[] for _ in contexts]
            return [Draft() for _ in contexts]
        drafts, self.fed, passes = self.steps(self.kv, blocks, k, temperatures, top_p, top_k, generator)
        meter.charge(generated_tokens=sum(len(d) for d in drafts), forward_passes=passes, flops=flops * passes / k)
        return drafts

    def commit(self, rows, paths, drafts) -> None:
        """Forget the fed chain tokens the target did not accept; the accepted tokens after
        them are fed at the next proposal (the context beyond the drafter's length)."""
        if self.kv is None:
            return
        forget = []
        for fed, path, d in zip(self.fed, paths, drafts):
            accepted = [d.tokens[c - 1] for c in path]
            j = 0
            while j < min(len(fed), len(accepted)) and fed[j] == accepted[j]:
                j += 1
            forget.append(len(fed) - j)
        self.kv.forget(forget)

    def select(self, index) -> None:
        if self.kv is not None:
            self.kv.select(index)
