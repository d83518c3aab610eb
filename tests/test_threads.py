"""Thread settings: idle OpenMP threads sleep by default; the user's choice wins (env or config)."""

import os
import subprocess
import sys

from test_cli import assert_user_error, ponder

PROBE = "import ponder, os, torch; print(os.environ['OMP_WAIT_POLICY'], torch.get_num_threads())"


def probe(**env):
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "PONDER_THREADS", "OMP_NUM_THREADS")}
    r = subprocess.run([sys.executable, "-c", PROBE], env={**base, **env}, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_idle_threads_sleep_unless_the_user_chose():
    assert probe()[0] == "PASSIVE"
    assert probe(OMP_WAIT_POLICY="ACTIVE")[0] == "ACTIVE"


def test_threads_from_the_environment_and_refused_when_malformed():
    assert probe(PONDER_THREADS="1")[1] == "1"
    bad = {**os.environ, "PONDER_THREADS": "two"}
    message = "PONDER_THREADS must be a whole number of threads >= 1, got 'two'"
    # importing still works (an import cannot report a user's mistake well) ...
    r = subprocess.run([sys.executable, "-c", "import ponder"], env=bad, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    # ... the first call says what is wrong: in Python a ConfigError before any weights load ...
    code = "import ponder\ntry:\n    ponder.load_model('/nonexistent')\nexcept ponder.ConfigError as e:\n    print(e)"
    r = subprocess.run([sys.executable, "-c", code], env=bad, capture_output=True, text=True, timeout=120)
    assert message in r.stdout, r.stderr
    # ... and on the command line a message, no traceback
    assert_user_error(ponder("run", "model.path=/nonexistent", "prompt=hi", env=bad), message)


def test_the_threads_key_is_checked_before_the_model_loads():
    assert_user_error(
        ponder("run", "model.path=/nonexistent", "threads=0", "prompt=hi"), "threads must be a whole number"
    )
