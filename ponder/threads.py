"""CPU thread settings, applied once when ponder is imported (before torch starts OpenMP).

OpenMP threads that spin while waiting (the default, OMP_WAIT_POLICY=ACTIVE in effect) collapse
when other jobs share the cores: each pass waits for a thread that is not running. ponder sets
OMP_WAIT_POLICY=PASSIVE unless the environment already says otherwise (benchmarks/threads.py,
docs/usage.md). The number of threads is torch's default unless PONDER_THREADS (or the config
key `threads`, or OMP_NUM_THREADS) says otherwise.
"""

from __future__ import annotations

import os

from ponder.errors import ConfigError


def set_wait_policy() -> None:
    """Before torch is imported: idle OpenMP threads sleep instead of spinning, unless the user chose."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def set_threads(threads=None, source: str = "threads") -> None:
    """torch's intra-op threads: `threads`, else $PONDER_THREADS, else left as torch chose."""
    if threads is None and os.environ.get("PONDER_THREADS"):
        threads, source = os.environ["PONDER_THREADS"], "PONDER_THREADS"
    if threads is None:
        return
    import torch

    torch.set_num_threads(thread_count(threads, source))


def thread_count(threads, source: str) -> int:
    """`threads` as a whole number >= 1, else a ConfigError naming `source`."""
    try:
        n = int(threads)
    except (TypeError, ValueError):
        n = 0
    if isinstance(threads, bool) or n < 1 or str(n) != str(threads).strip():
        raise ConfigError(f"{source} must be a whole number of threads >= 1, got {threads!r}")
    return n


def check_env() -> None:
    """A malformed $PONDER_THREADS as a ConfigError (`import ponder` ignores it, so that the
    error reaches the user from the first call, as a message, not as an import traceback)."""
    if os.environ.get("PONDER_THREADS"):
        thread_count(os.environ["PONDER_THREADS"], "PONDER_THREADS")


set_wait_policy()  # on import: ponder/__init__.py imports this module before anything imports torch
