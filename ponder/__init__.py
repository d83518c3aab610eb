"""ponder: inference-time scaling and fast decoding for language models."""

from ponder.threads import set_threads  # first: it sets OMP_WAIT_POLICY before torch loads OpenMP
from ponder.errors import ConfigError
from ponder.budget import Budget, BudgetTooSmall, Usage
from ponder.models import load_model
from ponder.types import Candidate, Completion, Result, SamplingParams

try:
    set_threads()  # $PONDER_THREADS, if set
except ConfigError:
    pass  # malformed: load_model and the CLI report it (threads.check_env), an import cannot say it well

__all__ = [
    "Budget",
    "BudgetTooSmall",
    "Usage",
    "load_model",
    "Candidate",
    "Completion",
    "Result",
    "SamplingParams",
    "Generator",
]


def __getattr__(name):  # Generator pulls in hydra; import it only when asked for
    if name == "Generator":
        from ponder.generator import Generator

        return Generator
    raise AttributeError(name)
