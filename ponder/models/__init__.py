"""Model backends behind one contract: text in, completions out."""

from __future__ import annotations

from ponder.protocols import LanguageModel  # the contract every backend here implements

__all__ = ["LanguageModel", "load_model"]

BACKENDS = ("hf", "vllm")


def load_model(
    path: str,
    backend: str = "hf",
    dtype: str = "auto",
    device: str = "auto",
    decoder=None,
    max_batch_rows: int = 32,
    prefix_cache_tokens: int = 65536,
    system_prompt: str | None = None,
    packed_weights: str = "auto",
    vllm: dict | None = None,
):
    """A model by preset name (smollm2-135m, qwen2.5-coder-0.5b, qwen2.5-coder-1.5b), hub id,
    local folder or GGUF file, behind the chosen backend: "hf" (transformers in this process;
    ponder's own decoders) or "vllm" (vLLM's engine in this process; `vllm` holds its settings,
    `ponder.models.vllm.EngineSettings`). `dtype`, `device`, `max_batch_rows`,
    `prefix_cache_tokens` and `packed_weights` are the HF backend's."""
    from ponder.errors import ConfigError, check_number
    from ponder.models.loading import load_pretrained
    from ponder.threads import check_env

    check_env()  # a malformed $PONDER_THREADS, before any weights load
    if backend not in BACKENDS:
        raise ConfigError(f"model.backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    check_number("model.max_batch_rows", max_batch_rows, minimum=1, integer=True)  # before the weights load
    check_number("model.prefix_cache_tokens", prefix_cache_tokens, minimum=0, integer=True)
    if backend == "vllm":
        return load_vllm(path, decoder, system_prompt, vllm or {})
    from ponder.models.hf import HFModel

    network, tokenizer = load_pretrained(path, dtype=dtype, device=device, packed_weights=packed_weights)
    return HFModel(
        network,
        tokenizer,
        name=path,
        decoder=decoder,
        max_batch_rows=max_batch_rows,
        prefix_cache_tokens=prefix_cache_tokens,
        system_prompt=system_prompt,
    )


def load_vllm(path: str, decoder, system_prompt: str | None, settings: dict):
    from ponder.errors import ConfigError
    from ponder.models.loading import checkpoint_folder
    from ponder.models.vllm import EngineSettings, VLLMModel

    speculation = engine_speculation(decoder)
    try:
        engine = EngineSettings(**settings)
    except TypeError as e:
        raise ConfigError(f"bad model.vllm settings: {e}") from None
    return VLLMModel(
        checkpoint_folder(path), name=path, settings=engine, system_prompt=system_prompt, speculation=speculation
    )


def engine_speculation(decoder):
    """The `decoder` config mapped onto vLLM's own speculative decoding (None: plain decoding), or
    a clear error for a decoder vLLM cannot run losslessly here."""
    from ponder.decoding.plain import PlainDecoder
    from ponder.errors import ConfigError
    from ponder.models.vllm import Speculation
    from ponder.speculative import NGramProposer

    if decoder is None or isinstance(decoder, PlainDecoder):
        return None
    proposer = getattr(decoder, "proposer", None)
    if isinstance(proposer, NGramProposer):
        return Speculation("ngram", proposer.num_tokens, proposer.max_ngram, proposer.min_ngram)
    name = type(proposer or decoder).__name__
    raise ConfigError(
        f"decoder with {name} runs on model.backend=hf only (ponder's own decoder); on model.backend=vllm "
        f"use decoder=plain or decoder=ngram (vLLM's own n-gram speculative decoding)"
    )
