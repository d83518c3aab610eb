"""Medusa heads ("Medusa: Simple LLM Inference Acceleration Framework with Multiple Decoding
Heads", Cai et al. 2024): small heads on the frozen base model's last hidden state, head k
guessing the token k + 2 positions ahead. Each head is residual blocks (x + SiLU(W x + b))
and an output layer, or, with `share_lm_head`, reuses the base model's lm_head so a head
costs one hidden x hidden layer.

Drafting cost: with a shared lm_head, every step runs that lm_head once per head (for
Qwen2.5's 151,936 tokens, 4 heads cost about a 0.5B model's forward pass). `ponder
train-medusa` therefore saves the vocabulary its labels used with the heads, and the proposer
by default ranks only those tokens (`vocab="auto"`): a lm_head slice of about 1,600 rows
instead of 151,936. Tokens outside it are never drafted; the target still verifies every
draft, so decoding stays exact either way.

Checkpoints load from ponder's format (`medusa.json` + `medusa.safetensors`) and from the
FasterDecoding Medusa format (`config.json` with `medusa_num_heads`/`medusa_num_layers`, and
`medusa_lm_head.safetensors` or `.pt`, keys `<head>.<layer>.linear.*` and `<head>.<layers>.weight`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ponder.budget import ModelShape
from ponder.errors import ConfigError, ModelNotFound, check_number
from ponder.speculative.tree import Draft, TokenTree


class ResBlock(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.linear = nn.Linear(hidden, hidden)
        nn.init.zeros_(self.linear.weight)  # starts as the identity: a head begins as the base lm_head
        self.act = nn.SiLU()

    def forward(self, x):
        return x + self.act(self.linear(x))


def lm_head_rows(lm_head: nn.Linear, rows: torch.Tensor | None = None, dtype=None) -> nn.Linear:
    """A frozen copy of `lm_head` in `dtype`, with only the output rows `rows` (token ids) when given."""
    w, bias = lm_head.weight.detach(), lm_head.bias
    if rows is not None:
        w, bias = w[rows], bias[rows] if bias is not None else None
    part = nn.Linear(
        w.shape[1], w.shape[0], bias=bias is not None, device=w.device, dtype=dtype or w.dtype
    ).requires_grad_(False)
    part.weight.copy_(w)
    if bias is not None:
        part.bias.copy_(bias.detach())
    return part


class MedusaHeads(nn.Module):
    def __init__(
        self,
        hidden_size: int,
        vocab_size: int,
        num_heads: int = 4,
        num_layers: int = 1,
        share_lm_head: bool = True,
        draft_vocab: int = 0,
    ):
        super().__init__()
        self.config = {
            "hidden_size": hidden_size,
            "vocab_size": vocab_size,
            "num_heads": num_heads,
            "num_layers": num_layers,
            "share_lm_head": share_lm_head,
            "draft_vocab": draft_vocab,
        }
        if draft_vocab:  # token ids the heads were trained to predict (train-medusa fills it in)
            self.register_buffer("draft_vocab", torch.zeros(draft_vocab, dtype=torch.long))
        self.heads = nn.ModuleList(
            nn.Sequential(
                *[ResBlock(hidden_size) for _ in range(num_layers)],
                *([] if share_lm_head else [nn.Linear(hidden_size, vocab_size, bias=False)]),
            )
            for _ in range(num_heads)
        )

    @property
    def num_heads(self) -> int:
        return self.config["num_heads"]

    def forward(self, hidden: torch.Tensor, lm_head: nn.Module) -> torch.Tensor:
        """Logits of every head: hidden [..., hidden_size] -> [..., num_heads, vocab]."""
        outs = [head(hidden) for head in self.heads]
        if self.config["share_lm_head"]:
            outs = [lm_head(o) for o in outs]
        return torch.stack(outs, -2)

    def shape(self, lm_head_rows: int | None = None) -> ModelShape:
        """For the FLOP model: the heads' own parameters plus, when shared, one lm_head (of
        `lm_head_rows` rows, default the whole vocabulary) per head."""
        own = sum(p.numel() for p in self.parameters())
        c = self.config
        rows = c["vocab_size"] if lm_head_rows is None else lm_head_rows
        shared = c["num_heads"] * c["hidden_size"] * rows if c["share_lm_head"] else 0
        return ModelShape(params=own + shared, layers=0, d_attn=0)

    def save(self, folder: str | Path) -> Path:
        from safetensors.torch import save_model

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_model(self, str(folder / "medusa.safetensors"))
        (folder / "medusa.json").write_text(json.dumps(self.config, indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, path: str | Path, hidden_size: int, vocab_size: int) -> "MedusaHeads":
        """From a ponder or FasterDecoding checkpoint folder (or its weights file)."""
        path = Path(path).expanduser()
        folder = path if path.is_dir() else path.parent
        if (folder / "medusa.json").is_file():
            from safetensors.torch import load_model

            heads = cls(**json.loads((folder / "medusa.json").read_text()))
            load_model(heads, str(folder / "medusa.safetensors"))
        elif (folder / "config.json").is_file() and "medusa_num_heads" in (
            cfg := json.loads((folder / "config.json").read_text())
        ):
            state = _faster_decoding_state(folder)
            heads = cls(
                hidden_size, vocab_size, cfg["medusa_num_heads"], cfg.get("medusa_num_layers", 1), share_lm_head=False
            )
            heads.load_state_dict({f"heads.{k}": v for k, v in state.items()})
        else:
            raise ModelNotFound(
                f"no Medusa heads at {path}: expected medusa.json + medusa.safetensors (ponder "
                f"train-medusa writes them) or a FasterDecoding folder (config.json with "
                f"medusa_num_heads and medusa_lm_head.safetensors or .pt)"
            )
        c = heads.config
        if (c["hidden_size"], c["vocab_size"]) != (hidden_size, vocab_size):
            raise ConfigError(
                f"Medusa heads at {path} were made for hidden size {c['hidden_size']} and vocabulary "
                f"{c['vocab_size']}, but the model has {hidden_size} and {vocab_size}: train heads for "
                f"this model with `ponder train-medusa`"
            )
        return heads


def _faster_decoding_state(folder: Path) -> dict:
    if (folder / "medusa_lm_head.safetensors").is_file():
        from safetensors.torch import load_file

        return load_file(str(folder / "medusa_lm_head.safetensors"))
    if (folder / "medusa_lm_head.pt").is_file():
        return torch.load(folder / "medusa_lm_head.pt", map_location="cpu", weights_only=True)
    raise ModelNotFound(f"{folder} has a Medusa config.json but no medusa_lm_head.safetensors or medusa_lm_head.pt")


class MedusaProposer:
    """Drafts a token tree from the heads' top-k guesses at the last accepted position.

    `choices`: the tree as Medusa choices (paths of top-k ranks); default a top-`tree_width`
    tree `num_heads` deep. `vocab`: "auto" ranks only the checkpoint's training vocabulary
    when it has one (heads sharing the lm_head), "full" the whole vocabulary. The first step
    after the prompt drafts nothing (the heads need the hidden state of a verified position,
    which verification then supplies every step)."""

    wants_hidden = True

    def __init__(self, heads, tree_width: int = 2, choices=None, vocab: str = "auto"):
        self.spec = heads
        self.width = check_number("decoder.tree_width", tree_width, minimum=1, integer=True)
        self.choices = [tuple(c) for c in choices] if choices else None
        if vocab not in ("auto", "full"):
            raise ConfigError(
                f"decoder.vocab must be auto (the heads' training vocabulary when the checkpoint "
                f"has one) or full, got {vocab!r}"
            )
        self.vocab_choice = vocab
        self.hidden = None

    def bind(self, model) -> None:
        net = model.network
        hidden, vocab = net.config.get_text_config().hidden_size, net.get_output_embeddings().weight.shape[0]
        heads = self.spec if isinstance(self.spec, MedusaHeads) else MedusaHeads.load(self.spec, hidden, vocab)
        self.heads = heads.to(device=model.device, dtype=net.dtype).eval()
        self.lm_head, self.vocab = net.get_output_embeddings(), None
        if self.vocab_choice == "auto" and heads.config["share_lm_head"] and heads.config.get("draft_vocab"):
            self.vocab = heads.draft_vocab
            self.lm_head = lm_head_rows(self.lm_head, self.vocab)
        self.tree = TokenTree(self.choices) if self.choices else TokenTree.top_k(self.width, heads.num_heads)
        if self.tree.depth > heads.num_heads:
            raise ConfigError(
                f"decoder.choices are {self.tree.depth} deep but the checkpoint has only {heads.num_heads} Medusa heads"
            )
        self.flops_per_row = 2.0 * heads.shape(self.lm_head.weight.shape[0]).params

    def start(self, rows, prompts, budget) -> None:
        self.hidden = None

    def propose(self, rows, contexts, temperatures, top_p, top_k, generator, budget, room) -> list[Draft]:
        # `room` is not used: the tree is static, and its heads run once whatever its depth
        meter = budget.draft_meter()
        if self.hidden is None or meter.affordable_rows(len(contexts), self.flops_per_row) < len(contexts):
            return [Draft() for _ in contexts]
        with torch.inference_mode():
            logits = self.heads(self.hidden, self.lm_head)  # [rows, heads, vocab or draft vocab]
        ranked = logits[:, : self.tree.depth].topk(max(self.tree.ranks) + 1, -1).indices
        if self.vocab is not None:
            ranked = self.vocab[ranked]
        drafts = [self.tree.draft(r) for r in ranked]
        meter.charge(
            generated_tokens=sum(len(d) for d in drafts), forward_passes=1, flops=self.flops_per_row * len(contexts)
        )
        return drafts

    def commit(self, rows, paths, drafts) -> None:
        last = torch.tensor([p[-1] if p else 0 for p in paths], device=rows.hidden.device)
        self.hidden = rows.hidden[torch.arange(len(paths), device=last.device), last]

    def select(self, index) -> None:
        if self.hidden is not None:
            self.hidden = self.hidden[index]
