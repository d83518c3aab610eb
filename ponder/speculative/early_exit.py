"""Early-exit self-drafting (the LayerSkip / SWIFT family): the target's first `exit_layer`
layers, its final norm and its own lm_head draft the tokens, the full model verifies them.
No extra weights. The draft runs on the target's own KV cache: the prefix entries of the
shared layers are reused, not recomputed, and the draft's entries are cut off before the
target verifies."""

from __future__ import annotations

from ponder.budget import ModelShape
from ponder.errors import ConfigError, check_number
from ponder.speculative.decoder import KVRows
from ponder.speculative.draft_model import ChainDrafter
from ponder.speculative.tree import Draft


def exit_shape(network, layers: int) -> ModelShape:
    """The FLOP model's view of the first `layers` layers plus the lm_head."""
    from ponder.models.hf import model_shape

    full = model_shape(network)
    body = sum(p.numel() for layer in network.model.layers[:layers] for p in layer.parameters())
    head = network.get_output_embeddings().weight.numel()
    return ModelShape(params=body + head, layers=layers, d_attn=full.d_attn)


class EarlyExitProposer(ChainDrafter):
    def __init__(
        self,
        exit_layer: int = 4,
        num_tokens: int = 4,
        tree_width: int = 1,
        min_confidence: float = 0.0,
        min_path_confidence: float = 0.0,
    ):
        super().__init__(num_tokens, tree_width, min_confidence, min_path_confidence)
        self.exit_layer = check_number("decoder.exit_layer", exit_layer, minimum=1, integer=True)

    def bind(self, model) -> None:
        layers = model.network.config.get_text_config().num_hidden_layers
        if self.exit_layer >= layers:
            raise ConfigError(f"decoder.exit_layer={self.exit_layer} must be below the model's {layers} layers")
        self.shape = exit_shape(model.network, self.exit_layer)
        self.vocab = model.network.get_output_embeddings().weight.shape[0]

    def propose(self, rows: KVRows, contexts, temperatures, top_p, top_k, generator, budget, room) -> list[Draft]:
        meter, k = budget.draft_meter(), min(self.k, room)
        flops = sum(sum(self.shape.decode_flops([n + 1 + i]) for i in range(k)) for n in rows.lengths)
        if k < 1 or meter.affordable_rows(1, flops) < 1:
            return [Draft() for _ in contexts]
        slots = rows.mask.shape[1]
        shallow = KVRows(rows.network, rows.cache, rows.mask, rows.lengths, self.exit_layer, rows.attention)
        drafts, _, passes = self.steps(shallow, [[c[-1]] for c in contexts], k, temperatures, top_p, top_k, generator)
        shallow.crop(slots)  # the full model recomputes these positions in every layer when it verifies
        meter.charge(generated_tokens=sum(len(d) for d in drafts), forward_passes=passes, flops=flops * passes / k)
        return drafts
