"""Every contract in ponder, on one screen. Components know each other only through these.

A backend declares what it can do beyond the contract (`Capabilities`); callers ask with
`require`, never with `hasattr`, and a missing capability is a clear error naming the backends
that have it. The FLOP model and the budget live in `ponder.budget`; the plain dataclasses
that cross these boundaries in `ponder.types`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from ponder.budget import Budget, ModelShape
from ponder.errors import ConfigError
from ponder.types import Candidate, Completion, Result, SamplingParams


@dataclass(frozen=True)
class Capabilities:
    """What a backend offers beyond `LanguageModel`."""

    backend: str  # "hf", "vllm", "scripted", ...
    ponder_decoders: bool = False  # runs ponder's own decoders (speculative, early exit, Medusa) in its token loop
    local_network: bool = False  # holds a transformers network in this process (training, PRM bodies)
    engine_speculative: tuple[str, ...] = ()  # decoder names mapped onto the engine's own speculative decoding


HAVE = {"ponder_decoders": "hf", "local_network": "hf", "engine_speculative": "vllm"}


def require(model: "LanguageModel", capability: str, what: str) -> None:
    """A clear error when `model`'s backend lacks `capability`, which `what` needs."""
    if not getattr(model.capabilities, capability):
        raise ConfigError(
            f"{what} needs a backend with {capability.replace('_', ' ')}; model.backend="
            f"{model.capabilities.backend} has none. Use model.backend={HAVE[capability]}"
        )


class LanguageModel(Protocol):
    """Stateless for the caller: text in, completions out. The n samples of a prompt share one
    prefill; a prompt that extends an earlier one pays only for what the backend computes."""

    name: str
    tokenizer: object  # a transformers PreTrainedTokenizerBase
    shape: ModelShape  # from the model's config (weights may live in another process)
    capabilities: Capabilities

    def chat(self, user: str) -> str: ...  # the prompt text for one user message
    def encode(self, text: str, special: bool = True) -> list[int]: ...

    def generate(self, prompts: Sequence[str], params: SamplingParams, budget: Budget) -> list[list[Completion]]: ...

    def generate_many(
        self, requests: Sequence[tuple[Sequence[str], SamplingParams, Budget]]
    ) -> list[list[list[Completion]]]: ...  # several requests at once, each on its own budget

    def score(self, prompts: Sequence[str], continuations: Sequence[str], budget: Budget) -> list[float]: ...


class Strategy(Protocol):
    uses_verifier: bool  # whether its first step already needs a verifier call

    def run(self, model: LanguageModel, prompt: str, verifier: "Verifier", budget: Budget) -> Result: ...


class Verifier(Protocol):
    name: str
    scores_steps: bool  # True for a StepVerifier (a process reward model)
    needs_model: bool  # False: CPU-side work, served outside the model batch (`ponder.together`)

    def bind(self, model: LanguageModel) -> None: ...  # a model-based verifier without a model uses this one
    def extract_answer(self, text: str) -> str | None: ...
    def same_answer(self, a: str, b: str) -> bool: ...
    def score(self, prompt: str, candidates: Sequence[Candidate], budget: Budget) -> list[float]: ...


class StepVerifier(Verifier, Protocol):
    """One score per step; `known[i]` holds scores already given to the first steps of solution i."""

    def step_scores(
        self, question: str, solutions: Sequence[list[str]], budget: Budget, known: Sequence[list[float]] | None = None
    ) -> list[list[float]]: ...


class Decoder(Protocol):
    """The token loop inside the HF backend (`ponder.decoding.plain`, `ponder.speculative`)."""

    merges_requests: bool  # may decode the rows of several requests in one batch

    def bind(self, model) -> None: ...
    def decode(self, network, batch, stop, shape: ModelShape, owners, top_p: float, top_k: int) -> list: ...


class Proposer(Protocol):
    """Drafts for speculative decoding inside the HF backend (`ponder.speculative`): per row its
    tokens, their draft probabilities (None for deterministic proposals) and optionally a token
    tree; `room` is the most draft tokens any row can still use. Optional hooks (`bind`, `start`,
    `commit`, `select`, `wants_hidden`) are documented on `SpeculativeDecoder`."""

    def propose(self, rows, contexts, temperatures, top_p: float, top_k: int, generator, budget, room: int) -> list: ...
