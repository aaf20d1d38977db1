"""One writer per run directory: an OS lock (`fcntl.flock`) on `<run>/.curate.lock`.

The kernel releases a flock when its holder exits, however it exits, so a lock can never outlive a dead
process. The file also records who holds it (pid, host, start time, command) so that a refused writer can
say whom it waited for, and so that a lock file left behind by a killed process is recognised and noted
when the next writer takes it over.

The lock is re-entrant within a process (`curate run` holds it for the whole run, and each stage it runs
asks for it again) and is released when the outermost holder releases it.

Limits: flock works on local filesystems and on NFSv4 (Linux maps it to a POSIX lock there). Run
directories on object stores or HDFS (`s3a://`, `hdfs://`) are not locked: neither offers a lock with
owner-death semantics, so two writers into the same remote run directory are not detected. Point one run
at one remote directory.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from curate.errors import ConfigError
from curate.io import fs

log = logging.getLogger(__name__)

LOCK_FILE = ".curate.lock"


class RunLockedError(ConfigError):
    """Another process is writing into the same run directory (exit code 2: pick another --out or wait)."""


@dataclass
class _HeldLock:
    path: Path
    handle: IO[str]
    depth: int = 1


# Keyed by the resolved run directory: a second flock on a new descriptor would conflict with our own.
_held: dict[str, _HeldLock] = {}


def _holder_identity() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:300],
    }


def _parse_holder(text: str) -> dict[str, Any] | None:
    try:
        holder = json.loads(text)
    except json.JSONDecodeError:
        return None
    return holder if isinstance(holder, dict) else None


def describe_holder(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "an unknown process"
    return f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('started')}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def acquire_run_lock(run_dir: str) -> bool:
    """Take the run directory's lock (or deepen our own hold on it); RunLockedError if another process has it.

    Returns False, without locking, for a remote run directory (see the module docstring).
    """
    if not fs.is_local(run_dir):
        log.info("run directory %s is remote: not locked (only local run directories are locked)", run_dir)
        return False
    root = Path(fs.local_path(run_dir)).resolve()
    held = _held.get(str(root))
    if held is not None:
        held.depth += 1
        return True
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_FILE
    # "a+" neither truncates nor fails when the file exists: the previous holder's identity is read below.
    handle = path.open("a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = _parse_holder(handle.read())
        handle.close()
        raise RunLockedError(
            f"{run_dir} is being written by another curate process ({describe_holder(holder)}): "
            "wait for it to finish or write to another --out"
        ) from None
    handle.seek(0)
    previous = _parse_holder(handle.read())
    if previous and previous.get("pid") != os.getpid():
        # The kernel dropped that process's flock, so it is gone (or closed the file without releasing).
        same_host = previous.get("host") == socket.gethostname()
        gone = same_host and isinstance(previous.get("pid"), int) and not _pid_alive(previous["pid"])
        reason = "that process is gone" if gone else "its lock was no longer held"
        log.warning("%s: took over a stale run lock from %s (%s)", run_dir, describe_holder(previous), reason)
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps(_holder_identity()) + "\n")
    handle.flush()
    _held[str(root)] = _HeldLock(path, handle)
    return True


def release_run_lock(run_dir: str) -> None:
    """Undo one `acquire_run_lock`; the outermost release clears the holder record and unlocks."""
    if not fs.is_local(run_dir):
        return
    key = str(Path(fs.local_path(run_dir)).resolve())
    held = _held.get(key)
    if held is None:
        return
    held.depth -= 1
    if held.depth > 0:
        return
    del _held[key]
    # Cleared while still locked, so the next holder finds no stale identity; the file itself stays (deleting
    # it would let a waiter lock an unlinked inode while a newcomer locks a fresh file).
    held.handle.seek(0)
    held.handle.truncate()
    held.handle.flush()
    fcntl.flock(held.handle.fileno(), fcntl.LOCK_UN)
    held.handle.close()


def holds_run_lock(run_dir: str) -> bool:
    return fs.is_local(run_dir) and str(Path(fs.local_path(run_dir)).resolve()) in _held


@contextmanager
def run_lock(run_dir: str) -> Iterator[None]:
    """Hold the run directory's lock for the duration of the block."""
    acquire_run_lock(run_dir)
    try:
        yield
    finally:
        release_run_lock(run_dir)
