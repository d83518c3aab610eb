"""Runs inside fresh mount/net/pid namespaces (made by `unshare`, see sandbox.py) before the
untrusted program: makes every mount but the work dir read-only, gives up root, sets
resource limits, then execs the program. Usage: sandbox_launch.py WORKDIR MEMORY_BYTES CPU_S"""

import ctypes
import os
import resource
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP = 38, 24
NOBODY = 65534
libc = ctypes.CDLL(None, use_errno=True)


def mount(target, flags, source=None, fstype=None, data=None):
    enc = lambda s: s.encode() if isinstance(s, str) else s
    if libc.mount(enc(source), target.encode(), enc(fstype), flags, enc(data)) != 0:
        raise OSError(ctypes.get_errno(), f"mount {target}")


def expose_interpreter():
    """uid nobody must reach the interpreter; where it lives under a private folder (such as
    /root/.pyenv), cover that folder with an empty tmpfs and bind back only the interpreter's
    trees. The rest of the private folder stays hidden from the program."""
    trees = sorted({os.path.realpath(p) for p in (sys.base_prefix, sys.prefix)})
    for tree in trees:
        parts = tree.split("/")
        ancestors = ["/".join(parts[:i]) for i in range(2, len(parts))]
        private = next((a for a in ancestors if not os.stat(a).st_mode & 0o001), None)
        if private is None:
            continue
        fds = {t: os.open(t, os.O_PATH) for t in trees if t.startswith(private + "/")}
        mount(private, 0, source="tmpfs", fstype="tmpfs", data="mode=755")
        for t, fd in fds.items():
            os.makedirs(t, exist_ok=True)
            mount(t, MS_BIND | MS_REC, source=f"/proc/self/fd/{fd}")
        return


def lock_filesystem(workdir, real_root):
    mount("/", MS_REC | MS_PRIVATE)  # nothing we do here leaks to the host
    mount(workdir, MS_BIND, source=workdir)
    if real_root:
        expose_interpreter()
    points = [line.split()[4] for line in open("/proc/self/mountinfo")]
    for point in sorted(set(points), key=len):
        if point == workdir or point.startswith(("/proc", "/sys")):
            continue
        try:
            kept = os.statvfs(point).f_flag & (MS_NOSUID | MS_NODEV | MS_NOEXEC)  # same bit values
            mount(point, MS_REMOUNT | MS_BIND | MS_RDONLY | kept)
        except OSError:
            if point == "/":
                raise


def drop_privileges(workdir, real_root):
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if real_root:  # become nobody: no write access by ownership, and a process count of its own
        os.chown(workdir, NOBODY, NOBODY)
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    else:  # root only inside a user namespace: empty the bounding set so exec grants no capability
        for cap in range(64):
            libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)


def main():
    workdir, memory, cpu, real_root = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
    lock_filesystem(workdir, real_root)
    drop_privileges(workdir, real_root)
    for limit, value in (
        (resource.RLIMIT_AS, memory),
        (resource.RLIMIT_CPU, cpu),
        (resource.RLIMIT_NPROC, 64),
        (resource.RLIMIT_FSIZE, 64 << 20),
        (resource.RLIMIT_NOFILE, 256),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(limit, (value, value))
    os.chdir(workdir)
    os.environ.update(HOME=workdir, TMPDIR=workdir)
    os.execv(sys.executable, [sys.executable, "-I", "-B", "program.py"])


if __name__ == "__main__":
    main()
