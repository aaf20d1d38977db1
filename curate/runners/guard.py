"""Run a per-record function in a supervised child process, so that no record can take its worker down.

Native parsers meet every page the web holds. A record that segfaults the parser, exhausts memory or never
finishes would otherwise kill the Spark Python worker (and, after `spark.task.maxFailures` retries of the same
record, the whole job). Here the function runs in a child Python process that the worker supervises:

- the parent sends a batch of records at once; the child reads the whole batch, runs the function on each
  record in turn, writing the number of the record in flight into a small file both have mapped, and answers
  once for the whole batch. So the parent always knows which record was in flight, and neither process wakes
  the other per record (one round trip a record cost ~0.1 ms of the two processes' CPU, most of it in the
  kernel: wake-ups, context switches and pipe locks);
- a child that dies (a signal, `os._exit`) or runs out of memory (an allocation past its address-space cap)
  costs the record in flight a `<kind>_crash` drop; the other records of the batch go to a fresh child;
- a record in flight for longer than its deadline (`timeout_s`, plus `timeout_s_per_mb` for each MiB of its
  arguments) costs a `<kind>_timeout` drop: the child is killed and replaced, and the other records of the
  batch go to the new one.

Messages are length-prefixed pickles over the child's stdin/stdout. A request's large bytes-like arguments
(the page, as bytes or as a memoryview of the Arrow buffer that holds it) do not go through the pipe: the
parent copies a batch's pages into a shared memory file that both processes map, and the request names their
sizes. The child copies each page out as bytes just before its record runs. Through the pipe, the pages cost
the two processes ~0.12 ms of CPU a page (150 KB), most of it in the kernel: the pipe's copies, and each side
spinning on the pipe's lock while the other held it. A new child first reports whether it could load the
function: one that cannot (an import error, a memory cap too small to start Python) is the job's error
(`CurateError`), never a drop of every record. The child is started with `sys.executable -P -m
curate.runners.guard` (never `fork`: the parent may be a JVM-connected driver with threads), and exits when
its stdin closes, so it never outlives its worker.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import mmap
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any

try:
    import fcntl
except ImportError:  # not on Windows: pipes keep their default size
    fcntl = None  # type: ignore[assignment]

_HEADER = struct.Struct("!Q")
_BATCH = struct.Struct("!QQ")  # the number of requests that follow, the size of the shared pages file
_REQUEST = struct.Struct("!QQ")  # pickle size, number of out-of-band buffers (each size then follows as one Q)
# The shared progress file: 1 + the index in its batch of the record the child is running, 0 before the first.
_PROGRESS = struct.Struct("=Q")
# Bytes arguments at least this large travel in the shared pages file rather than inside the pickle.
_OUT_OF_BAND_BYTES = 4096
# A batch's pages in the shared file, at most (a larger page goes alone): both processes map the file for as
# long as the guard lives, at the size of the largest batch.
_SHARED_BATCH_BYTES = 64 * 2**20
# Pipes this large take a batch's texts in a few writes, instead of a wake-up of the parent per 64 KiB (Linux).
_PIPE_BYTES = 2**20
_OK, _ERROR, _OUT_OF_MEMORY = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Failure:
    """A record the guarded function did not return for: `reason` is `<kind>_crash` or `<kind>_timeout`."""

    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class Raised:
    """A record on which the guarded function raised `exception` (sent back from the child)."""

    exception: Exception


# Every guard, closed at exit while the interpreter is whole. Left to teardown, `__del__` may find module globals
# gone and leave the child unreaped: it outlives the command, and the command's CPU as its parent counts it
# (wait4) misses the child's.
_LIVE: weakref.WeakSet[RecordGuard] = weakref.WeakSet()


@atexit.register
def _close_live_guards() -> None:
    for guard in list(_LIVE):
        guard.close()


class RecordGuard:
    """Calls `target` (`"package.module:function"`) on records in a supervised child process.

    `call_many` returns, per request and in order, the function's result, a `Failure`, or `Raised` with the
    exception the function raised. `call` is one request, and re-raises that exception in the parent, so the
    caller handles it as it would in-process.
    """

    def __init__(
        self, target: str, *, kind: str, timeout_s: float, timeout_s_per_mb: float = 0.0, memory_mb: int = 0
    ) -> None:
        self.target = target
        self.kind = kind
        self.timeout_s = timeout_s
        self.timeout_s_per_mb = timeout_s_per_mb
        self.memory_mb = memory_mb
        self._child: subprocess.Popen[bytes] | None = None
        self._progress_file: IO[bytes] | None = None
        self._progress: mmap.mmap | None = None
        self._pages_fd: int | None = None
        self._pages: mmap.mmap | None = None
        self.restarts = 0
        _LIVE.add(self)

    def call(self, *args: Any) -> Any:
        (result,) = self.call_many([args])
        if isinstance(result, Raised):
            raise result.exception
        return result

    def call_many(self, requests: Sequence[tuple[Any, ...]]) -> list[Any]:
        results: list[Any] = []
        for batch in _bounded_batches([_Request.of(args) for args in requests]):
            results.extend(self._call_batch(batch))
        return results

    def _call_batch(self, requests: list[_Request]) -> list[Any]:
        results: list[Any] = [None] * len(requests)
        pending = list(range(len(requests)))
        while pending:
            answered, lost_at, failure = self._run_batch([requests[index] for index in pending])
            for position, value in answered.items():
                results[pending[position]] = value
            if failure is None:
                break
            if lost_at is None:
                # The child was lost before it started a record of the batch: one at a time finds the culprit.
                if len(pending) == 1:
                    results[pending[0]] = failure
                    break
                for index in pending:
                    results[index] = self._call_batch([requests[index]])[0]
                break
            results[pending[lost_at]] = failure
            pending = [
                index for position, index in enumerate(pending) if position != lost_at and position not in answered
            ]
        return results

    def _run_batch(self, batch: list[_Request]) -> tuple[dict[int, Any], int | None, Failure | None]:
        """The answered requests by position, and for a lost child the position of the record in flight
        (None if it had started none) and its failure."""
        child = self._running_child()
        progress = self._progress
        assert progress is not None and child.stdin is not None and child.stdout is not None
        _PROGRESS.pack_into(progress, 0, 0)
        pages = self._shared_pages(sum(request.shared_bytes for request in batch))
        chunks: list[bytes] = [_BATCH.pack(len(batch), len(pages))]
        at = 0
        for request in batch:
            sizes = [buffer.nbytes for buffer in request.buffers]
            for buffer in request.buffers:
                pages[at : at + buffer.nbytes] = buffer
                at += buffer.nbytes
            body = request.body
            chunks.append(_REQUEST.pack(len(body), len(sizes)) + struct.pack(f"!{len(sizes)}Q", *sizes) + body)
        try:
            child.stdin.write(b"".join(chunks))
            child.stdin.flush()
        except (BrokenPipeError, OSError):
            return {}, self._in_flight(), self._lost(child, "died before the records were sent")
        fd = child.stdout.fileno()
        poll_s = min(_POLL_S, self.timeout_s / 4)
        seen, since, allowed = 0, time.monotonic(), self.timeout_s
        while not select.select([fd], [], [], poll_s)[0]:
            now, current = time.monotonic(), self._in_flight_number()
            if current != seen:
                seen, since = current, now
                allowed = self._allowed_s(batch[current - 1]) if current else self.timeout_s
            elif now - since > allowed:
                return {}, self._in_flight(), self._lost(child, None, allowed_s=allowed)
        deadline = time.monotonic() + max(self.timeout_s, _REPLY_S)
        header = _read_exactly(child.stdout, _HEADER.size, deadline)
        reply = None
        if isinstance(header, bytes) and header is not _TIMED_OUT:
            reply = _read_exactly(child.stdout, _HEADER.unpack(header)[0], deadline)
        if reply is None or reply is _TIMED_OUT:
            allowed_s = self.timeout_s if reply is _TIMED_OUT else None
            return {}, self._in_flight(), self._lost(child, None, allowed_s=allowed_s)
        answered: dict[int, Any] = {}
        for position, message in enumerate(_split_messages(reply)):
            status, value = pickle.loads(message)
            if status == _OUT_OF_MEMORY:
                return (
                    answered,
                    position,
                    self._lost(child, f"over the worker's {self.memory_mb} MB memory cap ({value})"),
                )
            answered[position] = Raised(value) if status == _ERROR else value
        return answered, None, None

    def _allowed_s(self, request: _Request) -> float:
        """How long one record may run: the deadline, plus its allowance for each MiB the record weighs."""
        return self.timeout_s + self.timeout_s_per_mb * (len(request.body) + request.shared_bytes) / 2**20

    def _shared_pages(self, size: int) -> mmap.mmap:
        """The parent's map of the shared pages file, at least `size` bytes long (grown, never shrunk)."""
        if self._pages is not None and len(self._pages) >= size:
            return self._pages
        assert self._pages_fd is not None
        size = max(1, -(-size // _PAGES_GRAIN)) * _PAGES_GRAIN
        if self._pages is not None:
            self._pages.close()
        os.ftruncate(self._pages_fd, size)
        self._pages = mmap.mmap(self._pages_fd, size)
        return self._pages

    def _in_flight_number(self) -> int:
        assert self._progress is not None
        (number,) = _PROGRESS.unpack_from(self._progress, 0)
        return int(number)

    def _in_flight(self) -> int | None:
        number = self._in_flight_number()
        return number - 1 if number else None

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
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        if self._progress_file is not None:
            self._progress_file.close()
            self._progress_file = None
        if self._pages is not None:
            self._pages.close()
            self._pages = None
        if self._pages_fd is not None:
            os.close(self._pages_fd)
            self._pages_fd = None

    def __del__(self) -> None:
        # At interpreter exit module globals may already be gone; the child exits on its own when stdin closes.
        try:
            self.close()
        except Exception:
            self._child = None

    def _running_child(self) -> subprocess.Popen[bytes]:
        if self._child is None or self._child.poll() is not None:
            if self._progress is None:
                # A file of its own, unlinked at once: the child maps it through the descriptor it inherits. It
                # lives as long as the guard (closed in `close`), so no `with`.
                self._progress_file = tempfile.TemporaryFile()  # noqa: SIM115
                self._progress_file.write(bytes(_PROGRESS.size))
                self._progress_file.flush()
                self._progress = mmap.mmap(self._progress_file.fileno(), _PROGRESS.size)
            if self._pages_fd is None:
                self._pages_fd = _shared_memory_file()
            assert self._progress_file is not None
            progress_fd = self._progress_file.fileno()
            env = dict(os.environ)
            # The child imports curate exactly as this process does (an editable install, a zip on a cluster).
            env["PYTHONPATH"] = os.pathsep.join(p or os.getcwd() for p in sys.path)
            child = subprocess.Popen(
                [
                    sys.executable,
                    "-P",  # not the working directory first on its path: it imports what this process imports
                    "-m",
                    "curate.runners.guard",
                    self.target,
                    str(self.memory_mb),
                    str(progress_fd),
                    str(self._pages_fd),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
                pass_fds=(progress_fd, self._pages_fd),
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

    def _lost(self, child: subprocess.Popen[bytes], note: str | None, *, allowed_s: float | None = None) -> Failure:
        """A lost child's failure: a timeout when `allowed_s` (the seconds the record had) is given."""
        self._child = None
        self.restarts += 1
        if allowed_s is not None:
            child.kill()
            child.wait()
            return Failure(f"{self.kind}_timeout", f"no result within {allowed_s:.3g} s; worker process killed")
        try:
            code = child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            code = child.wait()
        return Failure(f"{self.kind}_crash", note or f"worker process ended: {_describe_exit(code)}")


_TIMED_OUT = b"\x00timed-out"
# A child gets at least this long to import its function: a busy executor can take seconds to load a parser.
_STARTUP_S = 120.0
# While a batch runs the parent looks at the record in flight this often (no more than 4 times a deadline).
_POLL_S = 0.25
# A reply that has begun arrives within this (it is written at once; a batch's texts are a few MB).
_REPLY_S = 60.0


# The shared pages file grows in steps of this many bytes.
_PAGES_GRAIN = 2**20


@dataclass(frozen=True, slots=True)
class _Request:
    """One call's arguments as sent: the pickle, and the large bytes-like arguments it names, which travel in
    the shared pages file."""

    body: bytes
    buffers: list[memoryview]

    @classmethod
    def of(cls, args: tuple[Any, ...]) -> _Request:
        buffers: list[pickle.PickleBuffer] = []
        body = pickle.dumps(tuple(_sendable(a) for a in args), protocol=5, buffer_callback=buffers.append)
        return cls(body, [buffer.raw() for buffer in buffers])

    @property
    def shared_bytes(self) -> int:
        return sum(buffer.nbytes for buffer in self.buffers)


def _bounded_batches(requests: list[_Request]) -> list[list[_Request]]:
    """The requests in order, cut into batches of at most `_SHARED_BATCH_BYTES` of pages (a larger one alone)."""
    batches: list[list[_Request]] = []
    batch: list[_Request] = []
    size = 0
    for request in requests:
        if batch and size + request.shared_bytes > _SHARED_BATCH_BYTES:
            batches.append(batch)
            batch, size = [], 0
        batch.append(request)
        size += request.shared_bytes
    if batch:
        batches.append(batch)
    return batches


def _shared_memory_file() -> int:
    """A descriptor of an empty file, in memory where the system has memfd (else an unlinked temporary file),
    closed on exec except where `pass_fds` hands it to the child."""
    if hasattr(os, "memfd_create"):
        with contextlib.suppress(OSError):  # a sandbox may forbid the call
            return os.memfd_create("curate-guard-pages", os.MFD_CLOEXEC)
    with tempfile.TemporaryFile() as file:  # unlinked at once; the duplicate keeps it alive
        return os.dup(file.fileno())


def _split_messages(body: bytes) -> list[memoryview]:
    """The length-prefixed messages that make up a batch's reply."""
    view, messages, at = memoryview(body), [], 0
    while at < len(view):
        (size,) = _HEADER.unpack_from(view, at)
        messages.append(view[at + _HEADER.size : at + _HEADER.size + size])
        at += _HEADER.size + size
    return messages


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


def _serve(target: str, memory_mb: int, progress_fd: int, pages_fd: int) -> None:
    if memory_mb > 0:
        import resource

        limit = memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    # The protocol owns the original stdout; anything a library prints (from Python or C) goes to stderr.
    source, sink = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    try:
        function = _resolve(target)
        progress = mmap.mmap(progress_fd, _PROGRESS.size)
    except Exception as exc:
        sink.write(_message((_ERROR, f"{type(exc).__name__}: {exc}")))
        sink.flush()
        return
    sink.write(_message((_OK, None)))
    sink.flush()
    pages: mmap.mmap | None = None
    while True:
        header = source.read(_BATCH.size)
        if len(header) < _BATCH.size:
            return  # the worker closed the pipe: its task is over
        count, pages_size = _BATCH.unpack(header)
        if pages is None or len(pages) != pages_size:
            if pages is not None:
                pages.close()
            pages = mmap.mmap(pages_fd, pages_size, access=mmap.ACCESS_READ)
        # The whole batch is read before any record runs: the parent writes it without waiting on the child.
        requests = []
        for _ in range(count):
            request = _read_request(source)
            if request is None:
                return  # the worker went away mid-request
            requests.append(request)
        replies: list[bytes] = []
        at = 0
        for index in range(count):
            _PROGRESS.pack_into(progress, 0, index + 1)
            body, sizes = requests[index]
            buffers = []
            for size in sizes:
                buffers.append(pages[at : at + size])  # a copy: the parent rewrites the file for its next batch
                at += size
            try:
                replies.append(_message((_OK, function(*pickle.loads(body, buffers=buffers)))))
            except MemoryError as exc:
                # Memory exhaustion is the process's failure, not the record's exception: report it as a crash
                # and leave, so the rest of the batch gets a fresh child rather than a heap the failed
                # allocation left behind.
                replies.append(_message((_OUT_OF_MEMORY, f"MemoryError {exc}".strip()[:200])))
                _write_reply(sink, replies)
                return
            except Exception as exc:  # handed to the parent, which drops the record with the exception's name
                replies.append(_message((_ERROR, _portable(exc))))
        _write_reply(sink, replies)


def _read_request(source: IO[bytes]) -> tuple[bytes, tuple[int, ...]] | None:
    """One request's pickle and the sizes of its buffers in the shared pages file; None if the stream ends
    inside it."""
    header = source.read(_REQUEST.size)
    if len(header) < _REQUEST.size:
        return None
    size, count = _REQUEST.unpack(header)
    packed_sizes = source.read(8 * count)
    if len(packed_sizes) < 8 * count:
        return None
    body = source.read(size)
    if len(body) < size:
        return None
    return body, struct.unpack(f"!{count}Q", packed_sizes)


def _write_reply(sink: IO[bytes], replies: list[bytes]) -> None:
    sink.write(_HEADER.pack(sum(len(reply) for reply in replies)))
    for reply in replies:
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
    _serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
