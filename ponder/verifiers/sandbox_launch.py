"""The sandbox's init: runs as pid 1 of fresh mount, pid, network, IPC and UTS namespaces
(made by `unshare`, see sandbox.py), trusted, before any untrusted code.

It builds a new root on a small tmpfs holding only what `sandbox_view.python_view()` lists
(bound read-only), a size-limited tmpfs `/box` for the program, a minimal /dev and a /proc of
the new pid namespace that shows a process only to its own user; pivots into it and drops the
host's tree; writes the program; starts it as an unprivileged user of its own with resource
limits; and reports on the control fd, which no untrusted process ever holds, one JSON line per
event: {"ready": host pid} (so the caller can kill this namespace), {"started": true} once the
sandboxed interpreter said it is alive (or {"failed": why}), then {"exit": wait status}.

Usage: sandbox_launch.py CONTROL_FD STDOUT_FD STDERR_FD [REQUEST_FD REPLY_FD] < spec.json
"""

import ctypes
import json
import os
import platform
import resource
import subprocess
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = (
    1,
    2,
    4,
    8,
    32,
    4096,
    16384,
    1 << 18,
)
MS_NOATIME, MS_MOVE, MS_RELATIME, MNT_DETACH = 1024, 8192, 1 << 21, 2
ST_NOATIME, ST_RELATIME = 1024, 4096
PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP = 38, 24
DEVICES = ("null", "zero", "full", "random", "urandom")
NEW_ROOT = "/tmp"  # mount point of the new root, in this mount namespace only
libc = ctypes.CDLL(None, use_errno=True)


def mount(target, flags, source=None, fstype=None, data=None):
    enc = lambda s: s.encode() if isinstance(s, str) else s
    if libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source or ''} on {target} ({os.strerror(err)})")


def make_read_only(target):
    """Remount a bind mount read-only, keeping the flags a user namespace may not clear."""
    st = os.statvfs(target).f_flag
    kept = st & (MS_NOSUID | MS_NODEV | MS_NOEXEC)  # the same bit values in statvfs
    kept |= (MS_NOATIME if st & ST_NOATIME else 0) | (MS_RELATIME if st & ST_RELATIME else 0)
    mount(target, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | kept)


def make_point(path, is_dir):
    os.makedirs(path if is_dir else os.path.dirname(path), exist_ok=True)
    if not is_dir and not os.path.exists(path):
        open(path, "w").close()


def bind(sources, new_root):
    """Bind each host path (given as {path: O_PATH fd}) at its own path under `new_root`,
    read-only, not recursively: a mount below a bound folder stays out."""
    for path, fd in sources.items():
        target = new_root + path
        make_point(target, os.path.isdir(f"/proc/self/fd/{fd}"))
        mount(target, MS_BIND, source=f"/proc/self/fd/{fd}")
        if not path.startswith("/dev/"):  # a device node stays writable (/dev/null)
            make_read_only(target)
        os.close(fd)


def build_root(view, boot, disk_mb, uid):
    """The new root, mounted at NEW_ROOT; returns nothing, raises OSError on any failure."""
    mount("/", MS_REC | MS_PRIVATE)  # nothing done here reaches the host's mounts
    # opened before the new root's mount point covers any of them
    sources = {path: os.open(path, os.O_PATH) for path in [*view["binds"], *(f"/dev/{d}" for d in DEVICES)]}
    boot_fd = os.open(boot, os.O_PATH)
    mount(NEW_ROOT, MS_NOSUID | MS_NODEV, "tmpfs", "tmpfs", "size=4m,nr_inodes=4096,mode=755")
    for link, target in view["links"].items():
        make_point(os.path.dirname(NEW_ROOT + link), True)
        os.symlink(target, NEW_ROOT + link)
    bind({**sources, "/ponder/boot.py": boot_fd}, NEW_ROOT)
    for folder in view["hide"]:  # installed packages: an empty read-only cover
        mount(NEW_ROOT + folder, MS_NOSUID | MS_NODEV | MS_RDONLY, "tmpfs", "tmpfs", "size=4k,mode=755")
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(target, f"{NEW_ROOT}/dev/{name}")
    make_point(NEW_ROOT + "/proc", True)
    make_point(NEW_ROOT + "/box", True)
    mount(
        NEW_ROOT + "/box",
        MS_NOSUID | MS_NODEV,
        "tmpfs",
        "tmpfs",
        f"size={disk_mb}m,nr_inodes=65536,mode=700,uid={uid},gid={uid}",
    )
    pivot(NEW_ROOT)
    try:  # a /proc of this pid namespace, where a process sees only its own user's processes
        mount("/proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "proc", "proc", "hidepid=invisible,subset=pid")
    except OSError:
        mount("/proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "proc", "proc", "hidepid=2")
    mount("/", MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def pivot(new_root):
    """Make `new_root` the root and detach the host's tree from this mount namespace. Where
    pivot_root cannot be had (an unknown machine, a root that is no mount point), the new
    root is moved over / and chrooted into: the host's tree is then covered, and out of
    reach of a process without CAP_SYS_CHROOT."""
    os.chdir(new_root)
    number = PIVOT_ROOT.get(platform.machine())
    if number is not None and libc.syscall(number, b".", b".") == 0:
        if libc.umount2(b".", MNT_DETACH) != 0:
            raise OSError(ctypes.get_errno(), "detach the host's root")
    else:
        mount("/", MS_MOVE, source=".")
        os.chroot(".")
    os.chdir("/")


def limit(memory, cpu, disk_mb, uid):
    """Runs in the program's process before exec: no new privileges, resource limits."""
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if uid == 0:  # root only inside a user namespace: exec then grants no capability
        for cap in range(64):
            libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    for kind, value in (
        (resource.RLIMIT_AS, memory),
        (resource.RLIMIT_NPROC, 64),
        (resource.RLIMIT_FSIZE, disk_mb << 20),
        (resource.RLIMIT_NOFILE, 256),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(kind, (value, value))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU (read as a timeout) before SIGKILL


def start(spec, stdout, stderr, fds):
    """Start the program (through the boot script) as the run's own user; wait until the
    interpreter said it is alive, which it does before it reads any untrusted code."""
    alive_r, alive_w = os.pipe()
    uid = spec["uid"]
    argv = [spec["view"]["python"], "-I", "-B", "/ponder/boot.py", str(alive_w), *map(str, fds)]
    ids = {} if uid == 0 else {"user": uid, "group": uid, "extra_groups": []}
    proc = subprocess.Popen(
        argv,
        cwd="/box",
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        pass_fds=(alive_w, *fds),
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/box", "TMPDIR": "/box"},
        preexec_fn=lambda: limit(spec["memory"], spec["cpu"], spec["disk_mb"], uid),
        **ids,
    )
    for fd in (alive_w, stdout, stderr, *fds):
        os.close(fd)
    alive = os.read(alive_r, 1)
    os.close(alive_r)
    return proc, alive == b"+"


def main():
    control, stdout, stderr = map(int, sys.argv[1:4])
    fds = [int(fd) for fd in sys.argv[4:]]
    say = lambda **event: os.write(control, (json.dumps(event) + "\n").encode())
    spec = json.loads(sys.stdin.buffer.read())
    say(ready=int(os.readlink("/proc/self")))  # the host's /proc: this process's host pid
    try:
        build_root(spec["view"], spec["boot"], spec["disk_mb"], spec["uid"])
        with open("/box/program.py", "w") as f:
            f.write(spec["program"])
        proc, alive = start(spec, stdout, stderr, fds)
    except Exception as e:
        say(failed=f"{type(e).__name__}: {e}")
        sys.exit(1)
    if not alive:
        status = proc.wait()
        say(failed=f"the sandboxed interpreter did not start (exit status {status}); see its stderr")
        sys.exit(1)
    say(started=True)
    _, status = os.waitpid(proc.pid, 0)
    say(exit=os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
