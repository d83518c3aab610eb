"""The trusted checker: runs a problem's tests outside the sandbox, against a program that runs
inside it (sandbox_boot.py serves its functions over two pipes).

The tests' assertions run here, never in the untrusted process: the functions the candidate
was asked to write are stand-ins that send their arguments to the sandbox and get back a
reply parsed as a Python literal (never unpickled, never evaluated), so what comes back is a
plain value that cannot patch builtins, override `==`, or exit this process. A reply that is
not a literal, a program that dies, and a request it never answers all count as failures;
once the program has misbehaved every later call fails too. The verdict goes to stdout,
which only this process holds, as one JSON line: {"passed": k, "total": n, "failure": text or
null}. A problem whose hidden tests (or prompt) do not run ends this process with a
non-zero status and the reason on stderr, and no verdict.

Usage: sandbox_check.py REQUEST_FD REPLY_FD < spec.json
"""

import ast
import builtins
import doctest
import json
import math
import resource
import sys

MAX_REPLY = 1 << 20  # characters of one reply line


class CandidateGone(Exception):
    """The sandboxed program stopped answering, or answered something that is not a reply."""


class _Floats(ast.NodeTransformer):
    def visit_Name(self, node):
        value = {"inf": math.inf, "nan": math.nan}.get(node.id)
        return node if value is None else ast.Constant(value)


def literal(text: str):
    """A reply's value: a Python literal (`inf` and `nan` allowed), or CandidateGone."""
    try:
        return ast.literal_eval(_Floats().visit(ast.parse(text, mode="eval")))
    except Exception as e:  # ValueError, SyntaxError, RecursionError, MemoryError...
        raise CandidateGone(f"a reply that is not a Python literal ({type(e).__name__})") from None


class Sandboxed:
    """The pipes to the program in the sandbox; `function(name)` is a stand-in for one of its
    functions. The first fault marks it broken for good."""

    def __init__(self, requests: int, replies: int):
        self.requests, self.replies = open(requests, "w"), open(replies, "r", errors="replace")
        self.fault: str | None = None
        if self._receive() != ("loaded",):
            raise CandidateGone("the program did not say it loaded")

    def _receive(self):
        try:
            line = self.replies.readline(MAX_REPLY + 1)
        except Exception as e:  # whatever the program sent, it is its fault, never the checker's
            raise CandidateGone(f"an unreadable reply ({type(e).__name__})") from None
        if not line.endswith("\n"):
            raise CandidateGone("the program ended" if len(line) <= MAX_REPLY else "a reply over 1 MiB")
        return literal(line)

    def call(self, name: str, args: tuple, kwargs: dict):
        if self.fault:
            raise CandidateGone(self.fault)
        try:
            self.requests.write(repr((name, args, kwargs)) + "\n")
            self.requests.flush()
            reply = self._receive()
            if not (isinstance(reply, tuple) and reply and reply[0] in ("ok", "raise")):
                raise CandidateGone("a reply of the wrong shape")
        except (CandidateGone, OSError) as e:
            self.fault = str(e) if isinstance(e, CandidateGone) else f"the program ended ({e})"
            raise CandidateGone(self.fault) from None
        if reply[0] == "ok" and len(reply) == 2:
            return reply[1]
        kind = getattr(builtins, str(reply[1]), None) if len(reply) == 3 else None
        error = kind if isinstance(kind, type) and issubclass(kind, Exception) else RuntimeError
        raise error(f"raised in the sandbox: {reply[1:]}")

    def function(self, name: str):
        def stand_in(*args, **kwargs):
            return self.call(name, args, kwargs)

        stand_in.__name__ = stand_in.__qualname__ = name
        return stand_in


def problem_code(spec: dict) -> dict:
    """The problem's own names (the prompt's helpers, the test's `check`); hidden tests or a
    prompt that do not run are the problem's fault: exit with the reason."""
    names = {"__name__": "__check__"}
    try:
        exec(compile(spec.get("helpers", ""), "<prompt>", "exec"), names)
        if spec["kind"] == "check":
            exec(compile(spec["test"], "<test>", "exec"), names)
    except Exception as e:
        if spec["kind"] == "check":  # public examples go on without helpers that do not run
            sys.exit(f"the problem's own code does not run: {type(e).__name__}: {e}")
    if spec["kind"] == "check" and not callable(names.get("check")):
        sys.exit("the test code defines no check(candidate) function")
    return names


def grade(spec: dict, program: Sandboxed, names: dict) -> tuple[int, int, str | None]:
    """(tests passed, tests, why the first one failed)."""
    for name in spec["serve"]:
        names[name] = program.function(name)
    if spec["kind"] == "load":
        return 1, 1, None
    if spec["kind"] == "check":
        try:
            names["check"](names[spec["entry_point"]])
            return int(program.fault is None), 1, program.fault
        except BaseException as e:
            return 0, 1, f"{type(e).__name__}: {e}"[:500]
    passed, failure, compare = 0, None, doctest.OutputChecker()
    for source, want in spec["examples"]:
        try:
            got = repr(eval(source, names)) + "\n"
            ok = compare.check_output(want, got, doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
            failure = failure or (None if ok else f"{source} gave {got.strip()[:200]}")
            passed += bool(ok)
        except BaseException as e:
            failure = failure or f"{source}: {type(e).__name__}: {e}"[:500]
    return passed, len(spec["examples"]), failure


def main() -> None:
    spec = json.loads(sys.stdin.read())
    if spec.get("memory"):  # trusted tests fed untrusted values (`"x" * candidate()`) stay bounded too
        resource.setrlimit(resource.RLIMIT_AS, (spec["memory"], spec["memory"]))
    names = problem_code(spec)
    try:
        program = Sandboxed(int(sys.argv[1]), int(sys.argv[2]))
        passed, total, failure = grade(spec, program, names)
    except CandidateGone as e:  # before the first test: it did not load
        passed, total = 0, len(spec["examples"]) if spec["kind"] == "doctest" else 1
        failure = f"the program did not load: {e}"
    print(json.dumps({"passed": passed, "total": total, "failure": failure}), flush=True)


if __name__ == "__main__":
    main()
