"""Run untrusted (model-written) Python in a sandbox, and grade it by tests it cannot touch.

The program runs as pid 1's child in fresh mount, pid, network, IPC and UTS namespaces
(`unshare`, then sandbox_launch.py as the namespace's init), as an unprivileged user of its
own, in a new root that holds only the interpreter, its standard library and the libraries
they link (read-only; no site-packages, checkout, home, /tmp or host /proc), with a 64 MiB
tmpfs `/box` as its working dir, no network, no host IPC, and limits on wall time, CPU time,
address space, processes, file size and open files. Its output is read as it streams, keeping
the last MAX_OUTPUT characters and stopping it past OUTPUT_LIMIT bytes. When a run ends
(the program exits, the checker is done, the wall time is up, the output is too long) the
namespace's init is killed, which kills every process of the namespace, and the call waits
until it is reaped: nothing the program started outlives the call. The sandbox's own state
(ready, started, failed, exit status) comes on a control pipe only the launcher holds; a
failure there raises SandboxUnavailable. Where namespaces cannot be made, running is refused
rather than done unsandboxed. See docs/sandbox.md for the threats and how each is stopped.

`run_python` runs a program and reports how it ended. `run_checked` grades one: the program's
functions are served from the sandbox and the tests run in a trusted checker process outside
it (sandbox_check.py), whose verdict comes on a pipe the program never holds.
"""

from __future__ import annotations

import json
import os
import random
import select
import selectors
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ponder.errors import PonderError
from ponder.verifiers.sandbox_view import python_view

HERE = Path(__file__).parent
LAUNCHER, BOOT, CHECKER = HERE / "sandbox_launch.py", HERE / "sandbox_boot.py", HERE / "sandbox_check.py"
MAX_OUTPUT = 16_000  # characters of stdout and of stderr kept: the last ones
OUTPUT_LIMIT = 4 << 20  # bytes of stdout and stderr together before the program is stopped
TRUSTED_LIMIT = 1 << 16  # bytes read from the launcher's control pipe and from the checker
UNSHARE = ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--net", "--ipc", "--uts"]


class SandboxUnavailable(PonderError):
    """The sandbox itself could not be made here (decided from the launcher's control pipe)."""


class GradingError(RuntimeError):
    """A problem's own code (prompt or tests) failed in the trusted checker: that problem's
    fault, not the program's; a benchmark records it for that problem and goes on."""


@dataclass
class SandboxResult:
    status: str  # "ok", "error", "timeout", "output_limit"
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    verdict: dict | None = None  # run_checked: the checker's {"passed", "total", "failure"}

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class _Tail:
    """The last `keep` bytes of a stream, and how many came in all."""

    def __init__(self, keep: int):
        self.keep, self.data, self.total = keep, bytearray(), 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.data += chunk
        del self.data[: -self.keep]

    def text(self) -> str:
        return self.data.decode(errors="replace")[-MAX_OUTPUT:]


def run_python(
    code: str, timeout: float = 10.0, memory_mb: int = 1024, cpu_seconds: int | None = None, disk_mb: int = 64
) -> SandboxResult:
    """Run `code` as a Python program in the sandbox and report how it ended: "ok" (exit 0),
    "error", "timeout" (wall or CPU time) or "output_limit". Its exit code says how the program
    ended, never whether it is correct: grade with `run_checked`."""
    return _Run(code, timeout, memory_mb, cpu_seconds, disk_mb).result()


def run_checked(
    code: str,
    check: dict,
    timeout: float = 10.0,
    memory_mb: int = 1024,
    cpu_seconds: int | None = None,
    disk_mb: int = 64,
) -> SandboxResult:
    """Grade `code` by `check`, run in the trusted checker: {"kind": "check" (the test code's
    `check(candidate)` must pass), "doctest" (count the `examples` [(source, want)] that give
    `want`) or "load" (the program must load), "helpers": the problem's own code (the prompt),
    "serve": the names the program provides, "entry_point", "test", "examples"}. The result's
    `verdict` is the checker's {"passed": k, "total": n, "failure": why} (`passed` clamped to
    [0, n]; status "ok" then, whatever k is), or None when the run was stopped (timeout,
    output limit) before the checker was done: a fail. A problem whose own tests do not run
    raises GradingError."""
    run = _Run(code, timeout, memory_mb, cpu_seconds, disk_mb, check=check)
    return run.result()


class _Run:
    """One sandboxed run: start it, stream its pipes until it ends, then kill what is left."""

    def __init__(self, code, timeout, memory_mb, cpu_seconds, disk_mb, check=None):
        if shutil.which("unshare") is None:
            raise SandboxUnavailable(
                "the code sandbox needs `unshare` (util-linux); install it, e.g. `apt-get install util-linux`"
            )
        self.start_time, self.deadline = time.perf_counter(), time.perf_counter() + timeout
        self.check, self.events, self.stopped, self.init, self.checker = check, {}, None, None, None
        self.proc, self.killed = None, False
        self.sel = selectors.DefaultSelector()
        self.sinks = {
            "out": _Tail(MAX_OUTPUT),
            "err": _Tail(MAX_OUTPUT),
            "ctl": _Tail(TRUSTED_LIMIT),
            "verdict": _Tail(TRUSTED_LIMIT),
            "check_err": _Tail(MAX_OUTPUT),
            "launcher_err": _Tail(MAX_OUTPUT),
        }
        root = os.geteuid() == 0
        try:
            view = python_view()
        except OSError as e:
            raise SandboxUnavailable(
                f"cannot list what the sandbox needs of this Python ({e}); it needs `ldd` (libc-bin) on the PATH"
            ) from None
        spec = {
            "view": view,
            "boot": str(BOOT),
            "program": code,
            "memory": memory_mb << 20,
            "cpu": cpu_seconds or max(1, int(timeout) + 1),
            "disk_mb": disk_mb,
            "uid": random.SystemRandom().randrange(1 << 20, 1 << 30) if root else 0,
        }
        check_spec = None if check is None else json.dumps({**check, "memory": max(memory_mb, 256) << 20}).encode()
        pipes = (*os.pipe(), *os.pipe()) if check is not None else ()  # requests, then replies: (read, write)
        self._start_sandbox(json.dumps(spec).encode(), [pipes[0], pipes[3]] if pipes else [], root)
        if check_spec is not None:
            self._start_checker(check_spec, pipes[1], pipes[2])

    def _start_sandbox(self, spec: bytes, fds: list[int], root: bool) -> None:
        """unshare + the launcher, given the program's ends of the pipes (which it alone then
        holds). The program's stdout and stderr get pipes of their own, apart from unshare's
        and the launcher's stderr, which only says why a sandbox did not start."""
        ctl_r, ctl_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        given = [ctl_w, out_w, err_w, *fds]
        cmd = UNSHARE + ([] if root else ["--user", "--map-root-user"])
        cmd += [sys.executable, "-I", "-B", str(LAUNCHER), *map(str, given)]
        try:
            self.proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=given,
                start_new_session=True,
                env={"PATH": "/usr/bin:/bin"},
            )
        finally:
            for fd in given:
                os.close(fd)
        self._watch(out_r, "out", own=True)
        self._watch(err_r, "err", own=True)
        self._watch(ctl_r, "ctl", own=True)
        self._watch(self.proc.stderr.fileno(), "launcher_err")
        self._feed(self.proc.stdin, spec)

    def _start_checker(self, spec: bytes, requests: int, replies: int) -> None:
        """The trusted checker, outside the sandbox, given the checker's ends of the pipes."""
        try:
            self.checker = subprocess.Popen(
                [sys.executable, "-I", "-B", str(CHECKER), str(requests), str(replies)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(requests, replies),
                cwd="/",
                start_new_session=True,
            )
        except BaseException:
            self._kill_namespace()
            raise
        finally:
            os.close(requests)
            os.close(replies)
        self._watch(self.checker.stdout.fileno(), "verdict")
        self._watch(self.checker.stderr.fileno(), "check_err")
        self._feed(self.checker.stdin, spec)

    def _watch(self, fd, name, own=False):
        os.set_blocking(fd, False)
        self.sel.register(fd, selectors.EVENT_READ, (name, own))

    def _feed(self, pipe, data: bytes):
        os.set_blocking(pipe.fileno(), False)
        self.sel.register(pipe.fileno(), selectors.EVENT_WRITE, (pipe, memoryview(data)))

    def _pump(self, until: float, drain: bool = False) -> None:
        """Move bytes between the pipes until `until`, every pipe is at its end, or (unless
        draining what killed processes left) the run should stop."""
        while self.sel.get_map() and (drain or self.stopped is None):
            left = until - time.perf_counter()
            if left <= 0:
                return
            for key, _ in self.sel.select(left):
                if key.events & selectors.EVENT_WRITE:
                    self._write(key)
                else:
                    self._read(key)
            if not drain:
                self._react()

    def _write(self, key) -> None:
        pipe, data = key.data
        try:
            n = os.write(key.fd, data[: 1 << 16])
        except (BrokenPipeError, BlockingIOError) as e:
            n = 0 if isinstance(e, BlockingIOError) else len(data)
        if n == len(data):
            self.sel.unregister(key.fd)
            pipe.close()
        else:
            self.sel.modify(key.fd, selectors.EVENT_WRITE, (pipe, data[n:]))

    def _read(self, key) -> None:
        name, own = key.data
        try:
            chunk = os.read(key.fd, 1 << 16)
        except BlockingIOError:
            return
        if chunk:
            self.sinks[name].add(chunk)
            return
        self.sel.unregister(key.fd)
        if own:
            os.close(key.fd)
        self.events.setdefault(f"{name}_end", True)

    def _control(self) -> None:
        """Take in what the launcher said; on "ready", hold its init by a pidfd."""
        for line in bytes(self.sinks["ctl"].data).split(b"\n")[:-1]:  # whole lines only
            for name, value in json.loads(line).items():
                self.events.setdefault(name, value)
        if "ready" in self.events and "init" not in self.events:
            self.events["init"] = True
            self.init = _open_init(self.events["ready"], self.proc.pid)

    def _catch_up(self) -> None:
        """Read what the control pipe holds now: "ready" comes before any program runs, so
        once it is read no program can be running in a namespace we cannot kill and wait for."""
        for key in [k for k in self.sel.get_map().values() if k.data[0] == "ctl"]:
            while key.fd in self.sel.get_map() and select.select([key.fd], [], [], 0)[0]:
                self._read(key)
        self._control()

    def _react(self) -> None:
        """Act on what the trusted pipes said and on the output's size."""
        self._control()
        if self.sinks["out"].total + self.sinks["err"].total > OUTPUT_LIMIT:
            self.stopped = "output_limit"
        elif "failed" in self.events:
            self.stopped = "failed"
        elif self.check is None and ("exit" in self.events or "ctl_end" in self.events):
            self.stopped = "done"
        elif (
            self.check is not None
            and "verdict_end" in self.events
            and ("started" in self.events or "ctl_end" in self.events)
        ):  # and the sandbox said how it started
            self.stopped = "done"
        elif self.check is not None and ("exit" in self.events or "ctl_end" in self.events) and not self.killed:
            self._kill_namespace()  # the program is gone: its pipes close, and the checker sees it

    def _kill_namespace(self) -> None:
        """Kill the namespace's init (so the kernel kills all of the namespace) and wait until
        `unshare` has reaped it: then no process of the run is left."""
        self.killed = True
        self._catch_up()
        try:
            if self.init is not None:
                signal.pidfd_send_signal(self.init, signal.SIGKILL)
            else:
                self.proc.kill()  # before "ready": --kill-child takes the init with it
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.init is not None and not _exited(self.init):
            raise RuntimeError("the sandbox's init did not die when killed; processes of the run may be left")

    def result(self) -> SandboxResult:
        try:
            self._pump(self.deadline)
            timed_out = self.stopped is None and time.perf_counter() >= self.deadline
        finally:
            self._kill_namespace()
            if self.checker is not None:
                self.checker.kill()
                self.checker.wait()
            self._pump(time.perf_counter() + 2, drain=True)  # what the killed processes left in the pipes
            self._close()
        err = self.sinks["err"].text()
        if "started" not in self.events and not timed_out and self.stopped != "output_limit":
            why = self.events.get("failed") or "the launcher ended before starting the program"
            said = (self.sinks["launcher_err"].text().strip() + "\n" + err.strip()).strip()[-2000:]
            raise SandboxUnavailable(f"the code sandbox could not start here: {why}. Its stderr: {said}")
        code = self.events.get("exit")
        if "started" not in self.events:  # slow, not broken: nothing said it failed
            err += "\n[ponder: the sandbox had not started when the time limit came]"
        if self.stopped == "output_limit" or timed_out:
            status = "output_limit" if self.stopped == "output_limit" else "timeout"
        elif code == 0 and self.check is None:
            status = "ok"
        else:
            status = "timeout" if code == -signal.SIGXCPU else "error"
        verdict = self._verdict() if self.check is not None and status not in ("timeout", "output_limit") else None
        if verdict is not None:
            status = "ok"
        return SandboxResult(
            status, code, self.sinks["out"].text(), err, time.perf_counter() - self.start_time, verdict
        )

    def _verdict(self) -> dict:
        text = bytes(self.sinks["verdict"].data).decode(errors="replace").strip()
        try:
            verdict = json.loads(text)
            verdict["passed"] = max(0, min(int(verdict["passed"]), int(verdict["total"])))
            return verdict
        except (ValueError, KeyError, TypeError):
            raise GradingError(
                f"the trusted checker gave no verdict (exit status {self.checker.returncode}): "
                f"{self.sinks['check_err'].text().strip()[-2000:]}"
            ) from None

    def _close(self) -> None:
        for key in list(self.sel.get_map().values()):
            self.sel.unregister(key.fd)
            if key.events & selectors.EVENT_WRITE:
                key.data[0].close()
            elif key.data[1]:
                os.close(key.fd)
        self.sel.close()
        checker = (self.checker.stdout, self.checker.stderr) if self.checker else ()
        for pipe in (self.proc.stderr, *checker):
            pipe.close()
        if self.init is not None:
            os.close(self.init)


def _open_init(pid: int, unshare_pid: int) -> int | None:
    """A pidfd for the namespace's init (host pid `pid`), checked to be `unshare`'s child, so
    that a reused pid can never be killed by mistake."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:  # it has ended already: unshare reaps it
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            parent = int(f.read().rsplit(")", 1)[1].split()[1])
    except FileNotFoundError:
        os.close(fd)
        return None
    if parent != unshare_pid:
        os.close(fd)
        raise SandboxUnavailable(f"the sandbox's init (pid {pid}) is not unshare's child (pid {unshare_pid})")
    return fd


def _exited(pidfd: int) -> bool:
    """A pidfd turns readable once its process has exited."""
    return bool(select.select([pidfd], [], [], 1.0)[0])
