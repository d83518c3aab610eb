"""The first code of the sandboxed process (bound read-only at /ponder/boot.py; it imports
nothing of ponder, which the sandbox does not hold). It says it is alive on ALIVE_FD and
closes it before reading the untrusted program, so a byte there means the sandbox started,
whatever the program later writes. Then either

- runs /box/program.py as `__main__` (no further fds), or
- serves the program's functions: it loads the program as module `solution`, writes the line
  `('loaded',)` on REPLY_FD, and answers each request line `(name, args, kwargs)` from
  REQUEST_FD with `('ok', value)` or `('raise', exception name, message)`, one repr per line.
  What it answers is untrusted data to the trusted checker (sandbox_check.py), which parses
  literals only and runs the assertions itself.

Usage: boot.py ALIVE_FD [REQUEST_FD REPLY_FD]
"""

import builtins
import os
import runpy
import sys
import traceback

ARGUMENT_NAMES = {"__builtins__": {}, "inf": float("inf"), "nan": float("nan"), "set": set, "frozenset": frozenset}


def serve(source: str, requests: int, replies: int) -> None:
    reader, writer = open(requests, "r"), open(replies, "w")
    names = {"__name__": "solution", "__builtins__": builtins}
    try:
        exec(compile(source, "program.py", "exec"), names)
    except BaseException:
        traceback.print_exc()
        sys.exit(1)
    writer.write(repr(("loaded",)) + "\n")
    writer.flush()
    for line in reader:
        try:
            name, args, kwargs = eval(line, dict(ARGUMENT_NAMES))
            reply = repr(("ok", names[name](*args, **kwargs)))
        except Exception as e:
            reply = repr(("raise", type(e).__name__, str(e)[:500]))
        writer.write(reply + "\n")
        writer.flush()


def main() -> None:
    alive = int(sys.argv[1])
    os.write(alive, b"+")
    os.close(alive)
    if len(sys.argv) == 2:
        sys.argv = ["program.py"]
        runpy.run_path("program.py", run_name="__main__")
    else:
        with open("program.py") as f:
            source = f.read()
        serve(source, int(sys.argv[2]), int(sys.argv[3]))


if __name__ == "__main__":
    main()
