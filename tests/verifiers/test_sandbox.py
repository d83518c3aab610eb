"""The sandbox must contain what model-written code may do."""

import os
import subprocess
import uuid

from ponder.verifiers.sandbox import MAX_OUTPUT, run_python


def test_a_normal_program_runs():
    r = run_python("print(sum(range(10)))")
    assert r.ok and r.stdout.strip() == "45"


def test_infinite_loop_is_killed_at_the_time_limit():
    r = run_python("while True: pass", timeout=2)
    assert r.status == "timeout" and r.seconds < 5


def test_memory_bomb_is_refused():
    r = run_python("x = bytearray(8 << 30)\nprint('allocated')", memory_mb=256)
    assert not r.ok and "MemoryError" in r.stderr and "allocated" not in r.stdout


def test_fork_bomb_is_contained_and_its_children_die():
    marker = uuid.uuid4().hex
    code = (
        "import os, time\nn = 0\ntry:\n    while True:\n        if os.fork() == 0:\n"
        f"            time.sleep(60)  # {marker}\n            os._exit(0)\n        n += 1\n"
        "except OSError:\n    print('fork refused after', n)\n"
    )
    r = run_python(code, timeout=5)
    assert "fork refused after" in r.stdout and int(r.stdout.split()[-1]) <= 64
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    assert left == ""


def test_no_network():
    code = (
        "import socket\nfor host in [('127.0.0.1', 22), ('1.1.1.1', 53)]:\n    try:\n"
        "        socket.create_connection(host, timeout=2)\n        print('CONNECTED', host)\n"
        "    except OSError as e:\n        print('blocked', e.errno)\n"
    )
    r = run_python(code)
    assert r.ok and "CONNECTED" not in r.stdout and r.stdout.count("blocked") == 2


def test_writes_outside_the_temp_dir_fail_and_inside_work():
    name = f"ponder-escape-{uuid.uuid4().hex}"
    targets = [f"/tmp/{name}", os.path.join(os.getcwd(), name), os.path.expanduser(f"~/{name}"), f"/dev/shm/{name}"]
    code = (
        f"import os\nfor p in {targets!r}:\n    try:\n        open(p, 'w').write('x')\n        print('WROTE', p)\n"
        "    except OSError as e:\n        print('denied', e.errno)\n"
        "open('mine.txt', 'w').write('ok')\nprint(open('mine.txt').read())\n"
    )
    r = run_python(code)
    assert r.ok and "WROTE" not in r.stdout and r.stdout.strip().endswith("ok")
    assert not any(os.path.exists(t) for t in targets)


def test_the_program_cannot_regain_root():
    # the sandbox holds no `mount` binary: ask the kernel directly to make / writable again
    r = run_python(
        "import ctypes, os\nprint(os.getuid())\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "print(libc.mount(None, b'/', None, 32, None), ctypes.get_errno())"
    )  # 32: MS_REMOUNT
    uid, rc, errno = r.stdout.split()
    assert rc == "-1" and errno == "1" and (uid != "0" or os.geteuid() != 0)  # 1: EPERM


def test_the_tail_of_the_output_is_kept_when_the_program_ends():
    r = run_python(
        "import sys\nsys.stdout.write('x' * 200_000)\nprint('END')\nsys.stderr.write('E' * 50_000 + 'LAST')\n"
    )
    assert r.ok and r.stdout.endswith("xEND\n") and len(r.stdout) == MAX_OUTPUT
    assert r.stderr.endswith("ELAST") and len(r.stderr) == MAX_OUTPUT
