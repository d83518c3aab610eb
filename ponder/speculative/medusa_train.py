"""Training Medusa heads by self-distillation (Medusa-1 with self-distilled data): the frozen
base model answers GSM8K train questions, and each head learns to predict, from the base
model's last hidden state at position t, the token the base model itself wrote at t + k + 2.
Head losses are weighted 0.8^k as in the paper; the last `heldout` share of the answers is kept
aside to report each head's top-1 accuracy (over the whole vocabulary).

The cost is the shared lm_head: every position runs it once per head, forward and backward.
`loss_vocab="full"` is the paper's loss; with `"observed"` the cross-entropy's softmax runs over
the tokens the training labels use (about 1,600 of Qwen's 151,936), which brings
Qwen2.5-Coder-0.5B under an hour on a 2-core CPU but gives less accurate heads (the other
tokens' logits are never pushed down). `"auto"` (the default) takes the full loss for
vocabularies up to 65,536 tokens and the observed one above. The generated answers are kept in
<out>/distill.jsonl, so a stopped run, or a second run with other training settings, reuses them.

Heads sharing the lm_head are saved with the training vocabulary (the tokens the labels use),
which the proposer drafts from by default; the held-out accuracy is reported both over the
whole vocabulary and over that one."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from tqdm import tqdm

from ponder.bench import resume_cache
from ponder.budget import Budget
from ponder.errors import ConfigError, check_number
from ponder.speculative.medusa import MedusaHeads, lm_head_rows
from ponder.types import SamplingParams


def self_distilled(
    model, questions: list[str], max_new_tokens: int, batch: int = 16, progress: bool = True, cache: Path | None = None
) -> list[dict]:
    """Per question, the base model's greedy answer: {"question", "ids" (prompt + answer token
    ids), "start" (index of the first answer token), "seconds"}. With `cache` (a JSONL file),
    each batch is appended as it finishes and a rerun with the same settings answers only the
    questions not yet there."""
    settings = {"model": getattr(model, "name", type(model).__name__), "max_new_tokens": max_new_tokens}
    done = {r["question"]: r for r in (resume_cache(cache, settings, "self-distillation data") if cache else [])}
    todo = [q for q in dict.fromkeys(questions) if q not in done]
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens)
    for start in tqdm(range(0, len(todo), batch), desc="self-distillation data", disable=not progress):
        t0, chunk = time.perf_counter(), todo[start : start + batch]
        prompts = [model.chat(q) for q in chunk]
        outs = model.generate(prompts, params, Budget())
        seconds = round((time.perf_counter() - t0) / len(chunk), 2)
        new = [
            {"question": q, "ids": (ids := model.encode(p)) + c.token_ids, "start": len(ids), "seconds": seconds}
            for q, p, (c,) in zip(chunk, prompts, outs)
        ]
        done.update((r["question"], r) for r in new)
        if cache:
            with open(cache, "a") as f:
                f.write("".join(json.dumps(r) + "\n" for r in new))
    return [done[q] for q in questions]


@torch.inference_mode()
def hidden_and_labels(network, seqs, num_heads: int):
    """The base model's last hidden state at every position that predicts a generated token,
    and per head the token k + 2 ahead (-100 past the end)."""
    hs, labels = [], []
    for ids, start in seqs:
        h = network.base_model(input_ids=torch.tensor([ids], device=network.device)).last_hidden_state[0]
        pos = torch.arange(start - 1, len(ids) - 1)
        lab = torch.full((len(pos), num_heads), -100, dtype=torch.long)
        for k in range(num_heads):
            ahead = pos + k + 2
            ok = ahead < len(ids)
            lab[ok, k] = torch.tensor(ids)[ahead[ok]]
        hs.append(h[pos.to(h.device)].float().cpu())
        labels.append(lab)
    return hs, labels


def head_accuracy(heads, lm_head, h, labels, batch: int, vocab=None) -> list[float]:
    """Per head, the share of positions whose top-1 guess is the label; with `vocab`, `lm_head`
    has only those tokens' rows and guesses are mapped back to token ids."""
    right = torch.zeros(heads.num_heads)
    total = torch.zeros(heads.num_heads)
    with torch.inference_mode():
        for s in range(0, len(h), batch):
            pred = heads(h[s : s + batch], lm_head).argmax(-1)
            pred = vocab[pred] if vocab is not None else pred
            ok = labels[s : s + batch] != -100
            right += ((pred == labels[s : s + batch]) & ok).sum(0)
            total += ok.sum(0)
    return (right / total.clamp_min(1)).tolist()


def train_medusa(
    model,
    out: str | Path,
    questions: list[str],
    num_heads: int = 4,
    num_layers: int = 1,
    share_lm_head: bool = True,
    max_new_tokens: int = 128,
    epochs: int = 2,
    lr: float = 1e-3,
    batch_positions: int = 128,
    heldout: float = 0.1,
    seed: int = 0,
    loss_vocab: str = "auto",
    progress: bool = True,
) -> dict:
    """Train heads for `model` (an HFModel) and save them to `out`; returns the metrics saved
    beside them (medusa_train.json)."""
    from ponder.protocols import require

    require(model, "local_network", "ponder train-medusa")
    check_number("num_heads", num_heads, minimum=1, integer=True)
    check_number("epochs", epochs, minimum=1, integer=True)
    check_number("heldout", heldout, minimum=0, maximum=0.9)
    if len(questions) < 2:
        raise ConfigError(f"train-medusa needs at least 2 training questions, got {len(questions)}")
    if loss_vocab not in ("auto", "observed", "full"):
        raise ConfigError(f"loss_vocab must be auto, observed or full, got {loss_vocab!r}")
    net, lm_head = model.network, model.network.get_output_embeddings()
    if loss_vocab == "auto":
        loss_vocab = "full" if lm_head.weight.shape[0] <= 65536 else "observed"
    if loss_vocab == "observed" and not share_lm_head:
        raise ConfigError(
            "loss_vocab=observed trains heads through the shared lm_head: set share_lm_head=true, "
            "or loss_vocab=full to train heads with their own output layers"
        )
    torch.manual_seed(seed)
    data = self_distilled(model, questions, max_new_tokens, progress=progress, cache=Path(out) / "distill.jsonl")
    seqs = [(r["ids"], r["start"]) for r in data]
    t_data = sum(r["seconds"] for r in data)  # true generation time, also when resumed from the cache
    t0 = time.perf_counter()
    hs, labels = hidden_and_labels(net, seqs, num_heads)
    n_eval = int(len(seqs) * heldout)
    split = len(seqs) - n_eval
    h_train, y_train = torch.cat(hs[:split]), torch.cat(labels[:split])
    h_eval = torch.cat(hs[split:]) if n_eval else h_train[:0]
    y_eval = torch.cat(labels[split:]) if n_eval else y_train[:0]
    vocab = torch.unique(y_train[y_train != -100])  # the training vocabulary
    cfg, device = net.config.get_text_config(), lm_head.weight.device
    heads = MedusaHeads(
        cfg.hidden_size,
        lm_head.weight.shape[0],
        num_heads,
        num_layers,
        share_lm_head,
        draft_vocab=len(vocab) if share_lm_head else 0,
    )
    heads.to(device)
    if share_lm_head:
        heads.draft_vocab.copy_(vocab)
    vocab = vocab.to(device)
    f32_head = lm_head_rows(lm_head, dtype=torch.float32)  # frozen: the base model stays as it is
    vocab_head = lm_head_rows(lm_head, vocab, torch.float32)  # the lm_head's rows for the training vocabulary
    h_train, y_train = h_train.to(device), y_train.to(device)
    train_head = f32_head
    if loss_vocab == "observed":  # the softmax runs over the tokens the labels use, not all of the vocabulary
        train_head = vocab_head
        remap = torch.zeros(f32_head.weight.shape[0], dtype=torch.long, device=device)
        remap[vocab] = torch.arange(len(vocab), device=device)
        y_train = torch.where(y_train == -100, -100, remap[y_train.clamp_min(0)])
    opt = torch.optim.AdamW(heads.parameters(), lr=lr)
    weights = torch.tensor([0.8**k for k in range(num_heads)], device=h_train.device)
    steps = epochs * ((len(h_train) + batch_positions - 1) // batch_positions)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    losses = []
    with tqdm(total=steps, desc="training Medusa heads", disable=not progress) as bar:
        for _ in range(epochs):
            order = torch.randperm(len(h_train), device=h_train.device)
            for s in range(0, len(order), batch_positions):
                idx = order[s : s + batch_positions]
                logits = heads(h_train[idx], train_head)  # [b, heads, vocab]
                ce = torch.nn.functional.cross_entropy(
                    logits.transpose(1, 2), y_train[idx], ignore_index=-100, reduction="none"
                )  # [b, heads]
                ok = (y_train[idx] != -100).float()
                loss = ((ce * ok).sum(0) / ok.sum(0).clamp_min(1) * weights).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                losses.append(loss.item())
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
    heads.eval()
    h_eval, y_eval = h_eval.to(h_train.device), y_eval.to(h_train.device)

    def accuracy(head, vocab=None):
        return head_accuracy(heads, head, h_eval, y_eval, batch_positions, vocab)

    metrics = {
        "base_model": model.name,
        "sequences": len(seqs),
        "train_positions": len(h_train),
        "heldout_sequences": n_eval,
        "heldout_positions": len(h_eval),
        "num_heads": num_heads,
        "num_layers": num_layers,
        "share_lm_head": share_lm_head,
        "epochs": epochs,
        "lr": lr,
        "loss_vocab": loss_vocab,
        "loss_vocab_size": len(vocab) if loss_vocab == "observed" else len(f32_head.weight),
        "draft_vocab_size": len(vocab) if share_lm_head else None,
        "first_loss": losses[0],
        "last_loss": sum(losses[-10:]) / len(losses[-10:]),
        "heldout_top1_per_head": accuracy(f32_head) if n_eval else None,
        "heldout_top1_per_head_draft_vocab": accuracy(vocab_head, vocab) if n_eval and share_lm_head else None,
        "seconds_data": t_data,
        "seconds_training": (t_train := time.perf_counter() - t0),
        "seconds_total": t_data + t_train,
    }
    heads.save(out)
    (Path(out) / "medusa_train.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
