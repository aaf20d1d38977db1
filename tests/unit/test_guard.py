"""RecordGuard: a record that crashes, hangs or exhausts memory in the child costs that record only.

Every failure is followed by a normal record, which must succeed: the guard noticed, replaced the child and
went on. The targets are real misbehaviour (SIGABRT, SIGSEGV from native code, a sleep past the deadline, an
allocation past the address-space cap), not simulated exit codes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.fresh_python import LOCAL_INGEST, python_json, write_pages_warc
from support.guard_targets import behave
from support.warcs import real_pages

from curate.errors import CurateError
from curate.runners.guard import Failure, Raised, RecordGuard
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


@pytest.mark.parametrize(
    ("bad", "reason", "detail"),
    [
        (("segfault", None), "extract_crash", "signal SIGSEGV"),
        (("exit", 3), "extract_crash", "exit code 3"),
        (("allocate", 2 * 2**30), "extract_crash", "over the worker's 1024 MB memory cap"),
    ],
)
def test_a_crash_inside_a_batch_costs_that_record_only(
    guard: RecordGuard, bad: tuple[str, object], reason: str, detail: str
) -> None:
    good = [("return", index) for index in range(6)]
    batch = [*good[:2], bad, *good[2:4], bad, *good[4:]]
    results = guard.call_many(batch)
    assert [results[index] for index in (0, 1, 3, 4, 6, 7)] == [behave(*request) for request in good]
    for failure in (results[2], results[5]):
        assert isinstance(failure, Failure)
        assert failure.reason == reason
        assert detail in failure.detail
    assert guard.restarts == 2
    assert guard.call_many([("return", "after")]) == [behave("return", "after")]


def test_a_batch_over_the_shared_file_bound_goes_in_parts(guard: RecordGuard, monkeypatch) -> None:
    import curate.runners.guard as guard_module

    # Pages travel in a shared file of at most this many bytes a batch; a page over it goes alone.
    monkeypatch.setattr(guard_module, "_SHARED_BATCH_BYTES", 100_000)
    pages = [bytes([index]) * size for index, size in enumerate([30_000, 50_000, 40_000, 250_000, 5_000, 60_000])]
    batch = [("return", page) for page in pages]
    batch.insert(4, ("abort", None))
    results = guard.call_many(batch)
    assert results[:4] + results[5:] == [behave("return", page) for page in pages]
    assert results[4] == Failure("extract_crash", "worker process ended: signal SIGABRT")
    assert guard.restarts == 1


@pytest.mark.parametrize("memfd", ["missing", "forbidden"])
def test_pages_travel_through_a_temporary_file_where_memfd_is_not_there(monkeypatch, memfd: str) -> None:
    import os

    # macOS has no memfd_create, and a seccomp sandbox may refuse it: the guard then maps an unlinked file.
    if memfd == "missing":
        monkeypatch.delattr(os, "memfd_create", raising=False)
    else:

        def refuse(*args: object) -> int:
            raise PermissionError(1, "Operation not permitted")

        monkeypatch.setattr(os, "memfd_create", refuse)
    guard = RecordGuard(TARGET, kind="extract", timeout_s=5.0)
    try:
        pages = [bytes([index]) * 100_000 for index in range(3)]
        assert guard.call_many([("return", page) for page in pages]) == [behave("return", page) for page in pages]
    finally:
        guard.close()


def test_the_child_imports_what_the_parent_imports_whatever_the_working_directory(
    guard: RecordGuard, tmp_path: Path, monkeypatch
) -> None:
    shadow = tmp_path / "support"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("")
    (shadow / "guard_targets.py").write_text("def behave(action, value=None):\n    return 'shadowed'\n")
    monkeypatch.chdir(tmp_path)
    assert guard.call("return", 1) == behave("return", 1)


def test_a_record_past_the_deadline_inside_a_batch_costs_that_record_only() -> None:
    guard = RecordGuard(TARGET, kind="extract", timeout_s=0.5)
    try:
        results = guard.call_many([("return", 1), ("sleep", 30), ("sleep", 0.01), ("return", 2)])
        assert results == [
            behave("return", 1),
            Failure("extract_timeout", "no result within 0.5 s; worker process killed"),
            "woke",
            behave("return", 2),
        ]
        assert guard.restarts == 1
    finally:
        guard.close()


def test_a_record_has_its_deadline_plus_an_allowance_for_each_mib_it_weighs() -> None:
    guard = RecordGuard(TARGET, kind="extract", timeout_s=0.5, timeout_s_per_mb=1.0)
    try:
        heavy = bytes(2 * 2**20)  # 2 MiB: 2.5 s in all
        results = guard.call_many([("sleep", 1.0, heavy), ("sleep", 1.0, b"light"), ("return", 3)])
        assert results == [
            "woke",
            Failure("extract_timeout", "no result within 0.5 s; worker process killed"),
            behave("return", 3),
        ]
    finally:
        guard.close()


def test_an_exception_inside_a_batch_is_handed_back_for_that_record(guard: RecordGuard) -> None:
    results = guard.call_many([("return", 1), ("raise", 7), ("raise_unpicklable", 8), ("return", 2)])
    assert results[0] == behave("return", 1)
    assert results[3] == behave("return", 2)
    assert isinstance(results[1], Raised)
    assert str(results[1].exception) == "bad record 7"
    assert isinstance(results[2], Raised)
    assert "Unpicklable: holds a lock: 8" in str(results[2].exception)
    assert guard.restarts == 0


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
        requests = [(page.html, None, "text/html", 1) for page in pages]
        assert guard.call_many(requests) == [extract_record(*args) for args in requests]
        assert guard.call(*requests[0]) == extract_record(*requests[0])
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


@pytest.mark.parametrize("cut", ["in the batch header", "in the sizes", "in the pickle"])
def test_a_child_whose_worker_goes_away_mid_request_exits_quietly(cut: str) -> None:
    import os
    import pickle
    import struct
    import subprocess
    import sys
    import tempfile

    page = b"<p>" * 5000
    buffers: list[pickle.PickleBuffer] = []
    body = pickle.dumps(("return", pickle.PickleBuffer(page)), protocol=5, buffer_callback=buffers.append)
    # A batch of two requests, the first whole: the child runs nothing until it has read the whole batch. The
    # pages are in the shared file; the pipe carries the pickles and the pages' sizes.
    request = struct.pack("!QQ", len(body), 1) + struct.pack("!Q", len(page)) + body
    batch = struct.pack("!QQ", 2, 2 * len(page)) + request + request
    second = 16 + len(request)
    stop = {
        "in the batch header": 10,
        "in the sizes": second + 20,
        "in the pickle": second + 24 + len(body) // 2,
    }[cut]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p or os.getcwd() for p in sys.path)}
    with tempfile.TemporaryFile() as progress, tempfile.TemporaryFile() as pages:
        progress.write(bytes(8))
        progress.flush()
        pages.write(page + page)
        pages.flush()
        child = subprocess.Popen(
            [sys.executable, "-m", "curate.runners.guard", TARGET, "0", str(progress.fileno()), str(pages.fileno())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            pass_fds=(progress.fileno(), pages.fileno()),
        )
        stdout, stderr = child.communicate(batch[:stop], timeout=30)
    assert child.returncode == 0, stderr.decode(errors="replace")
    assert stderr == b""
    # Its ready message, and no reply to the half-sent batch.
    (ready_size,) = struct.unpack("!Q", stdout[:8])
    assert len(stdout) == 8 + ready_size
    assert pickle.loads(stdout[8:]) == (0, None)


def test_a_command_reaps_its_guard_child_before_exit(tmp_path: Path, shared_data: Path) -> None:
    """The child is waited for while the interpreter is whole, so the command's own CPU accounting (its
    parent's wait4, as the benchmarks use) includes the child. An exit hook registered before curate is
    imported runs after curate's own, and must already see the child's CPU among the reaped children."""
    write_pages_warc(tmp_path, shared_data)
    report = (
        "import atexit, json, resource\n"
        "def report():\n"
        "    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "    print(json.dumps({'children_cpu': reaped.ru_utime + reaped.ru_stime}))\n"
        "atexit.register(report)\n"
    )
    assert python_json(report + LOCAL_INGEST, tmp_path)["children_cpu"] > 0
