"""Run a per-record function in a supervised child process, so that no record can take its worker down.

Native parsers meet every page the web holds. A record that segfaults the parser, exhausts memory or never
finishes would otherwise kill the Spark Python worker (and, after `spark.task.maxFailures` retries of the same
record, the whole job). Here the function runs in a child Python process that the worker supervises:

- the parent sends one record at a time and waits for its result with a deadline, so it always knows which
  record was in flight;
- a child that dies (a signal, `os._exit`) or runs out of memory (an allocation past its address-space cap)
  costs that record a `<kind>_crash` drop, and the next record starts a fresh child;
- a record with no result by the deadline costs a `<kind>_timeout` drop: the child is killed and replaced.

Messages are length-prefixed pickles over the child's stdin/stdout; a request's bytes-like arguments (the
page, as bytes or as a memoryview of the Arrow buffer that holds it) follow its pickle as raw out-of-band
buffers, so neither side copies them into or out of a pickle, and the child receives them as bytes. A new
child first reports whether it could load the function: one that cannot (an import error, a memory cap too
small to start Python) is the job's error (`CurateError`), never a drop of every record. The child is
started with `sys.executable -m curate.runners.guard` (never `fork`: the parent may be a JVM-connected driver
with threads), and exits when its stdin closes, so it never outlives its worker.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

try:
    import fcntl
except ImportError:  # not on Windows: pipes keep their default size
    fcntl = None  # type: ignore[assignment]

_HEADER = struct.Struct("!Q")
_REQUEST = struct.Struct("!QQ")  # pickle size, number of out-of-band buffers (each size then follows as one Q)
# Bytes arguments at least this large travel beside the pickle rather than inside it.
_OUT_OF_BAND_BYTES = 4096
# Pipes this large take a whole page in one write, instead of a wake-up of the child per 64 KiB (Linux).
_PIPE_BYTES = 2**20
_OK, _ERROR, _OUT_OF_MEMORY = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Failure:
    """A record the guarded function did not return for: `reason` is `<kind>_crash` or `<kind>_timeout`."""

    reason: str
    detail: str


class RecordGuard:
    """Calls `target` (`"package.module:function"`) on records in a supervised child process.

    `call` returns the function's result, or a `Failure`. An exception raised by the function itself is
    re-raised in the parent, so the caller handles it as it would in-process.
    """

    def __init__(self, target: str, *, kind: str, timeout_s: float, memory_mb: int = 0) -> None:
        self.target = target
        self.kind = kind
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self._child: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def call(self, *args: Any) -> Any:
        child = self._running_child()
        buffers: list[pickle.PickleBuffer] = []
        message = pickle.dumps(tuple(_sendable(a) for a in args), protocol=5, buffer_callback=buffers.append)
        sizes = [buffer.raw().nbytes for buffer in buffers]
        try:
            assert child.stdin is not None
            child.stdin.write(
                _REQUEST.pack(len(message), len(sizes)) + struct.pack(f"!{len(sizes)}Q", *sizes) + message
            )
            for buffer in buffers:
                child.stdin.write(buffer.raw())
            child.stdin.flush()
        except (BrokenPipeError, OSError):
            return self._lost(child, "died before the record was sent")
        assert child.stdout is not None
        deadline = time.monotonic() + self.timeout_s
        header = _read_exactly(child.stdout, _HEADER.size, deadline)
        if header is None or header is _TIMED_OUT:
            return self._lost(child, None, timed_out=header is _TIMED_OUT)
        (size,) = _HEADER.unpack(header)
        body = _read_exactly(child.stdout, size, deadline)
        if body is None or body is _TIMED_OUT:
            return self._lost(child, None, timed_out=body is _TIMED_OUT)
        status, value = pickle.loads(body)
        if status == _ERROR:
            raise value
        if status == _OUT_OF_MEMORY:
            return self._lost(child, f"over the worker's {self.memory_mb} MB memory cap ({value})")
        return value

    def close(self) -> None:
        if self._child is not None:
            with contextlib.suppress(OSError):
                assert self._child.stdin is not None
                self._child.stdin.close()
            try:
                self._child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._child.kill()
                self._child.wait()
            self._child = None

    def __del__(self) -> None:
        # At interpreter exit module globals may already be gone; the child exits on its own when stdin closes.
        try:
            self.close()
        except Exception:
            self._child = None

    def _running_child(self) -> subprocess.Popen[bytes]:
        if self._child is None or self._child.poll() is not None:
            env = dict(os.environ)
            # The child imports curate exactly as this process does (an editable install, a zip on a cluster).
            env["PYTHONPATH"] = os.pathsep.join(p or os.getcwd() for p in sys.path)
            child = subprocess.Popen(
                [sys.executable, "-m", "curate.runners.guard", self.target, str(self.memory_mb)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
            )
            for pipe in (child.stdin, child.stdout):
                _enlarge(pipe)
            self._await_ready(child)
            self._child = child
        return self._child

    def _await_ready(self, child: subprocess.Popen[bytes]) -> None:
        from curate.errors import CurateError

        assert child.stdout is not None
        deadline = time.monotonic() + max(self.timeout_s, _STARTUP_S)
        header = _read_exactly(child.stdout, _HEADER.size, deadline)
        body = None
        if isinstance(header, bytes) and header is not _TIMED_OUT:
            body = _read_exactly(child.stdout, _HEADER.unpack(header)[0], deadline)
        cap = f" under a {self.memory_mb} MB memory cap" if self.memory_mb else ""
        if body is None or body is _TIMED_OUT:
            child.kill()
            code = child.wait()
            raise CurateError(f"the {self.kind} worker process could not start{cap}: {_describe_exit(code)}")
        status, value = pickle.loads(body)
        if status == _ERROR:
            child.wait()
            raise CurateError(f"the {self.kind} worker process could not load {self.target}{cap}: {value}")

    def _lost(self, child: subprocess.Popen[bytes], note: str | None, *, timed_out: bool = False) -> Failure:
        self._child = None
        self.restarts += 1
        if timed_out:
            child.kill()
            child.wait()
            return Failure(f"{self.kind}_timeout", f"no result within {self.timeout_s:g} s; worker process killed")
        try:
            code = child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            code = child.wait()
        return Failure(f"{self.kind}_crash", note or f"worker process ended: {_describe_exit(code)}")


_TIMED_OUT = b"\x00timed-out"
# A child gets at least this long to import its function: a busy executor can take seconds to load a parser.
_STARTUP_S = 120.0


def _read_exactly(stream: IO[bytes], size: int, deadline: float) -> bytes | None:
    """`size` bytes from the child's stdout; None at end of stream, `_TIMED_OUT` past the deadline."""
    fd = stream.fileno()
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        wait = deadline - time.monotonic()
        if wait <= 0:
            return _TIMED_OUT
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            return _TIMED_OUT
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _enlarge(pipe: IO[bytes] | None) -> None:
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None) if fcntl is not None else None
    if pipe is not None and set_size is not None:
        with contextlib.suppress(OSError):  # over the system's pipe-max-size: the default size still works
            fcntl.fcntl(pipe.fileno(), set_size, _PIPE_BYTES)


def _describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
        return f"signal {-code}"
    return f"exit code {code}"


def _resolve(target: str) -> Callable[..., Any]:
    module, _, name = target.partition(":")
    function: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return function


def _serve(target: str, memory_mb: int) -> None:
    if memory_mb > 0:
        import resource

        limit = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    # The protocol owns the original stdout; anything a library prints (from Python or C) goes to stderr.
    source, sink = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    try:
        function = _resolve(target)
    except Exception as exc:
        sink.write(_message((_ERROR, f"{type(exc).__name__}: {exc}")))
        sink.flush()
        return
    sink.write(_message((_OK, None)))
    sink.flush()
    while True:
        header = source.read(_REQUEST.size)
        if len(header) < _REQUEST.size:
            return  # the worker closed the pipe: its task is over
        size, count = _REQUEST.unpack(header)
        packed_sizes = source.read(8 * count)
        if len(packed_sizes) < 8 * count:
            return  # the worker went away mid-request
        sizes = (size, *struct.unpack(f"!{count}Q", packed_sizes))
        parts = [source.read(n) for n in sizes]
        if any(len(part) < n for part, n in zip(parts, sizes, strict=True)):
            return
        args = pickle.loads(parts[0], buffers=parts[1:])
        try:
            reply = _message((_OK, function(*args)))
        except MemoryError as exc:
            # Memory exhaustion is the process's failure, not the record's exception: report it as a crash and
            # leave, so the next record gets a fresh child rather than a heap the failed allocation left behind.
            sink.write(_message((_OUT_OF_MEMORY, f"MemoryError {exc}".strip()[:200])))
            sink.flush()
            return
        except Exception as exc:  # handed to the parent, which drops the record with the exception's name
            reply = _message((_ERROR, _portable(exc)))
        sink.write(reply)
        sink.flush()


def _sendable(argument: Any) -> Any:
    """A large bytes-like argument as an out-of-band buffer (sent without a copy); a small memoryview, which does
    not pickle, as bytes."""
    if isinstance(argument, memoryview):
        return pickle.PickleBuffer(argument) if argument.nbytes >= _OUT_OF_BAND_BYTES else argument.tobytes()
    if isinstance(argument, bytes) and len(argument) >= _OUT_OF_BAND_BYTES:
        return pickle.PickleBuffer(argument)
    return argument


def _message(value: Any) -> bytes:
    body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


def _portable(exc: Exception) -> Exception:
    """The exception itself when it pickles, else a RuntimeError that names it."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)
