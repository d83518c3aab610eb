"""Run untrusted (model-written) Python in a sandbox.

The program runs in its own temp dir, inside new network, mount and pid namespaces
(`unshare`): no network (only a down loopback), every file system read-only but the temp
dir, not root (uid nobody, or no capabilities inside a user namespace), with limits on wall
time, CPU time, address space, processes, file size and open files. At the end the whole
process group is killed, and leaving the pid namespace kills anything the program forked.
Where namespaces cannot be made, running is refused rather than done unsandboxed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ponder.errors import PonderError

LAUNCHER = Path(__file__).with_name("sandbox_launch.py")
MAX_OUTPUT = 16_000


class SandboxUnavailable(PonderError):
    pass


@dataclass
class SandboxResult:
    status: str  # "ok", "error", "timeout"
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def run_python(
    code: str, timeout: float = 10.0, memory_mb: int = 1024, cpu_seconds: int | None = None
) -> SandboxResult:
    """Run `code` as a Python program in the sandbox and report how it ended."""
    if shutil.which("unshare") is None:
        raise SandboxUnavailable(
            "the code sandbox needs `unshare` (util-linux); install it, e.g. `apt-get install util-linux`"
        )
    workdir = tempfile.mkdtemp(prefix="ponder-sandbox-")
    try:
        Path(workdir, "program.py").write_text(code)
        root = os.geteuid() == 0
        cmd = ["unshare", "--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc"]
        cmd += [] if root else ["--user", "--map-root-user"]
        cpu = cpu_seconds or max(1, int(timeout) + 1)
        cmd += [sys.executable, "-I", str(LAUNCHER), workdir, str(memory_mb << 20), str(cpu), str(int(root))]
        start = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        )
        try:
            out, err = proc.communicate(timeout=timeout)
            status = "ok" if proc.returncode == 0 else "error"
        except subprocess.TimeoutExpired:
            status = "timeout"
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        err_text = err.decode(errors="replace")[-MAX_OUTPUT:]
        if proc.returncode == -signal.SIGXCPU or proc.returncode == 128 + signal.SIGXCPU:
            status = "timeout"
        if "unshare:" in err_text and "Operation not permitted" in err_text:
            raise SandboxUnavailable(f"cannot create the sandbox's namespaces here: {err_text.strip()}")
        return SandboxResult(
            status, proc.returncode, out.decode(errors="replace")[-MAX_OUTPUT:], err_text, time.perf_counter() - start
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
