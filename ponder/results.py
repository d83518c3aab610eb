"""Results files (JSONL, one record a line, appended as work finishes) that two runs cannot
corrupt: one writer at a time (`results_lock`), the settings that made the records kept beside
each file (`<file>.settings.json`), records of unknown provenance refused, and damaged lines
reported and removed so their work is redone."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path

from ponder.errors import ConfigError, PonderError

_held: dict[str, list] = {}  # lock path -> [open lock file, depth]: re-entrant within one process


def settings_file(path: Path) -> Path:
    """`res.jsonl` -> `res.jsonl.settings.json`: each results file its own (res.jsonl and res.txt
    used to share res.settings.json, so one run's settings overwrote the other's)."""
    return Path(str(path) + ".settings.json")


def legacy_settings_file(path: Path) -> Path:
    return path.with_suffix(".settings.json")


@contextmanager
def results_lock(path: Path):
    """Hold `path` for this process while it writes there; another process is refused with a
    message (an flock on `<file>.lock`, released by the OS if the holder dies)."""
    key = str(Path(path).resolve()) + ".lock"
    if key in _held:
        _held[key][1] += 1
    else:
        Path(key).parent.mkdir(parents=True, exist_ok=True)
        f = open(key, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another"
            f.close()
            raise ConfigError(
                f"{path} is being written by another ponder run (pid {holder}); wait until it finishes "
                "(a rerun then resumes and adds only what is missing) or write to another file with out="
            ) from None
        f.truncate(0)
        f.write(str(os.getpid()))
        f.flush()
        _held[key] = [f, 1]
    try:
        yield
    finally:
        _held[key][1] -= 1
        if _held[key][1] == 0:
            _held.pop(key)[0].close()


def read_results(path: Path) -> list[dict]:
    """Finished records of a results file; lines that are not a JSON object are skipped."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def clean(path: Path, what: str) -> list[dict]:
    """The records in `path`, the file rewritten without damaged lines. A last line without its
    newline (a kill mid-write) goes silently; any other line that is not a JSON object is
    reported on stderr, since its work is then done again."""
    if not path.is_file():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    lines, tail = lines[:-1], lines[-1]  # tail: b"" when the file ends with a newline
    rows, kept, bad = [], [], []
    for n, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            row = None
        if isinstance(row, dict):
            rows.append(row)
            kept.append(line)
        elif line.strip():
            bad.append(n)
    if bad:
        shown = ", ".join(map(str, bad[:5])) + (" ..." if len(bad) > 5 else "")
        print(
            f"ponder: warning: {path} line(s) {shown} were not complete records; removed "
            f"({len(bad)} line(s)), their {what} will be made again",
            file=sys.stderr,
        )
    if bad or tail:
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tmp.write_bytes(b"".join(line + b"\n" for line in kept))
        os.replace(tmp, path)  # atomic: a kill now leaves the old file or the clean one
    return rows


def same_settings(stored: dict, settings: dict) -> bool:
    """Settings match; a stored task.limit / task.offset (older files kept them) does not count:
    which problems a run covers is not what made each record."""
    stored = dict(stored)
    if isinstance(stored.get("task"), dict) and isinstance(settings.get("task"), dict):
        stored["task"] = {k: v for k, v in stored["task"].items() if k in settings["task"]}
    return stored == settings


def resume_cache(path: Path, settings: dict | None, what: str) -> list[dict]:
    """The records a stopped run left in `path` (damaged lines removed, see `clean`). With
    `settings` (kept beside it in <file>.settings.json), only when they are the ones that made
    them: a clear error when they differ, or when records exist with no settings file (copied
    from elsewhere: unknown provenance). A run that stopped before its first record binds nothing."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; the results go in a file: give one, e.g. out={path}/results.jsonl")
    path.parent.mkdir(parents=True, exist_ok=True)
    records = clean(path, what)
    if settings is None:
        return records
    meta = settings_file(path)
    stored_at = meta if meta.is_file() else legacy_settings_file(path)
    if records and not stored_at.is_file():
        raise ConfigError(
            f"{path} holds {len(records)} {what} but no {meta.name} saying what made them; ponder does not add "
            "to records of unknown provenance: write to another file (out=) or delete it"
        )
    if records and not same_settings(json.loads(stored_at.read_text()), settings):
        raise ConfigError(
            f"{path} holds {what} made with other settings ({stored_at.read_text().strip()}); "
            "write to another file (out=) or delete it"
        )
    write_text(meta, json.dumps(settings) + "\n")
    return records


def write_text(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as e:
        raise write_error(path, e) from None


def write_error(path: Path, e: OSError, kept: str = "") -> PonderError:
    """An OS error while writing results, as the user should read it (no traceback)."""
    why = "no space left on device" if e.errno == errno.ENOSPC else (e.strerror or str(e))
    return PonderError(f"could not write {path}: {why}.{kept} Free space or fix the path, then run again to resume")
