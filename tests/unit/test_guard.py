"""RecordGuard: a record that crashes, hangs or exhausts memory in the child costs that record only.

Every failure is followed by a normal record, which must succeed: the guard noticed, replaced the child and
went on. The targets are real misbehaviour (SIGABRT, SIGSEGV from native code, a sleep past the deadline, an
allocation past the address-space cap), not simulated exit codes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.guard_targets import behave
from support.warcs import real_pages

from curate.errors import CurateError
from curate.runners.guard import Failure, RecordGuard
from curate.steps.extract import extract_record

TARGET = "support.guard_targets:behave"


@pytest.fixture
def guard():
    supervised = RecordGuard(TARGET, kind="extract", timeout_s=5.0, memory_mb=1024)
    yield supervised
    supervised.close()


def test_normal_records_give_the_in_process_result(guard: RecordGuard) -> None:
    # Bytes of 4 KiB and more travel beside the pickle: at, below and far above that size.
    big = [b"\x00\xff" * 2048, b"p" * 4095, bytes(range(256)) * 12_000]
    values = [None, 0, "text", b"\x00bytes", {"nested": [1.5, None]}, "x" * 3_000_000, *big]
    assert [guard.call("return", v) for v in values] == [behave("return", v) for v in values]
    assert guard.restarts == 0


def test_memoryviews_arrive_as_bytes(guard: RecordGuard) -> None:
    # ExtractStep sends each page as a view of its Arrow buffer; a view under 4 KiB goes inside the pickle.
    import pyarrow as pa

    pages = pa.array([b"<p>" * 5000, b"<p>small</p>", bytes(range(256)) * 40], pa.binary())
    for page in pages:
        view = memoryview(page.as_buffer())
        assert guard.call("return", view) == behave("return", page.as_py())
    assert guard.restarts == 0


@pytest.mark.parametrize(
    ("action", "value", "reason", "detail"),
    [
        ("abort", None, "extract_crash", "signal SIGABRT"),
        ("segfault", None, "extract_crash", "signal SIGSEGV"),
        ("exit", 3, "extract_crash", "exit code 3"),
        ("allocate", 2 * 2**30, "extract_crash", "over the worker's 1024 MB memory cap"),
    ],
)
def test_a_crash_drops_the_record_and_the_next_one_succeeds(
    guard: RecordGuard, action: str, value: object, reason: str, detail: str
) -> None:
    assert guard.call("return", "before") == behave("return", "before")
    failure = guard.call(action, value)
    assert isinstance(failure, Failure)
    assert failure.reason == reason
    assert detail in failure.detail
    assert guard.restarts == 1
    assert guard.call("return", "after") == behave("return", "after")
    assert guard.restarts == 1


def test_a_record_past_the_deadline_is_a_timeout_and_the_child_is_replaced() -> None:
    guard = RecordGuard(TARGET, kind="extract", timeout_s=0.5)
    try:
        first_child = guard.call("return", "warm")  # the child is started and importing before the clock runs
        assert first_child == behave("return", "warm")
        failure = guard.call("sleep", 30)
        assert failure == Failure("extract_timeout", "no result within 0.5 s; worker process killed")
        assert guard.call("sleep", 0.01) == "woke"
        assert guard.restarts == 1
    finally:
        guard.close()


def test_an_exception_is_raised_in_the_parent_and_the_child_lives_on(guard: RecordGuard) -> None:
    with pytest.raises(ValueError, match="bad record 7"):
        guard.call("raise", 7)
    with pytest.raises(RuntimeError, match="Unpicklable: holds a lock: 8"):
        guard.call("raise_unpicklable", 8)
    assert guard.call("return", 9) == behave("return", 9)
    assert guard.restarts == 0


def test_output_printed_by_the_target_does_not_corrupt_the_protocol(guard: RecordGuard) -> None:
    assert [guard.call("print", i) for i in range(3)] == [0, 1, 2]
    assert guard.restarts == 0


def test_guarded_extraction_equals_in_process_extraction(shared_data: Path) -> None:
    pages = [p for p in real_pages(shared_data) if p.source.name.startswith("math_")][:12]
    assert len(pages) == 12
    guard = RecordGuard("curate.steps.extract:extract_record", kind="extract", timeout_s=60.0, memory_mb=4096)
    try:
        for page in pages:
            args = (page.html, None, "text/html", 1)
            assert guard.call(*args) == extract_record(*args), page.source.name
        assert guard.restarts == 0
    finally:
        guard.close()


@pytest.mark.parametrize(
    ("target", "memory_mb", "message"),
    [
        ("support.no_such_module:behave", 0, "could not load support.no_such_module:behave: ModuleNotFoundError"),
        ("support.guard_targets:no_such_function", 0, "could not load support.guard_targets:no_such_function"),
        (TARGET, 8, r"could not (start|load \S+) under a 8 MB memory cap"),
    ],
)
def test_a_child_that_cannot_start_is_the_jobs_error_not_a_drop(target: str, memory_mb: int, message: str) -> None:
    guard = RecordGuard(target, kind="extract", timeout_s=5.0, memory_mb=memory_mb)
    with pytest.raises(CurateError, match=message):
        guard.call("return", 1)


@pytest.mark.parametrize("cut", ["in the sizes", "in the pickle", "in the page"])
def test_a_child_whose_worker_goes_away_mid_request_exits_quietly(cut: str) -> None:
    import os
    import pickle
    import struct
    import subprocess
    import sys

    page = b"<p>" * 5000
    buffers: list[pickle.PickleBuffer] = []
    body = pickle.dumps(("return", pickle.PickleBuffer(page)), protocol=5, buffer_callback=buffers.append)
    request = struct.pack("!QQ", len(body), 1) + struct.pack("!Q", len(page)) + body + page
    stop = {"in the sizes": 20, "in the pickle": 24 + len(body) // 2, "in the page": len(request) - 100}[cut]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p or os.getcwd() for p in sys.path)}
    child = subprocess.Popen(
        [sys.executable, "-m", "curate.runners.guard", TARGET, "0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    stdout, stderr = child.communicate(request[:stop], timeout=30)
    assert child.returncode == 0, stderr.decode(errors="replace")
    assert stderr == b""
    # Its ready message, and no reply to the half-sent record.
    (ready_size,) = struct.unpack("!Q", stdout[:8])
    assert len(stdout) == 8 + ready_size
    assert pickle.loads(stdout[8:]) == (0, None)
