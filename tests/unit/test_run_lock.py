"""One writer per run directory, checked with real processes: refusal names the holder, a dead holder is taken over."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from curate.run_lock import LOCK_FILE, RunLockedError, acquire_run_lock, holds_run_lock, release_run_lock, run_lock

# Takes the lock, says so, and holds it until its stdin closes (or it is killed).
HOLDER = (
    "import sys; from curate.run_lock import acquire_run_lock; acquire_run_lock(sys.argv[1]); "
    "print('held', flush=True); sys.stdin.read()"
)
# Tries the lock once: exit 0 if it got it, else the CLI's exit code (2) and the one-line message.
TRY = (
    "import sys; from curate.run_lock import acquire_run_lock, RunLockedError\n"
    "try:\n    acquire_run_lock(sys.argv[1])\n"
    "except RunLockedError as exc:\n    print(exc, file=sys.stderr); sys.exit(exc.exit_code)"
)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    run = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    yield process
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)


def _try_lock(run: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", TRY, str(run)], capture_output=True, text=True, timeout=60)


def test_a_second_writer_is_refused_with_the_holder_named(holder: subprocess.Popen[str], tmp_path: Path) -> None:
    run = tmp_path / "run"
    with pytest.raises(RunLockedError) as refused:
        acquire_run_lock(str(run))
    message = str(refused.value)
    assert f"pid {holder.pid} on {socket.gethostname()}, since 20" in message
    assert "\n" not in message and refused.value.exit_code == 2
    assert not holds_run_lock(str(run))


def test_curate_run_into_a_locked_run_exits_2_before_any_work(
    holder: subprocess.Popen[str], tmp_path: Path, shared_data: Path
) -> None:
    run = tmp_path / "run"
    before = sorted(p.name for p in run.iterdir())
    warc = shared_data / "cc-warc" / "whirlwind" / "whirlwind.warc.gz"
    result = subprocess.run(
        [sys.executable, "-m", "curate.cli.main", "run", "--input", str(warc), "--out", str(run)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"pid {holder.pid}" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in run.iterdir()) == before  # no stage was started


def test_a_lock_left_by_a_killed_process_is_taken_over_with_a_note(
    holder: subprocess.Popen[str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = tmp_path / "run"
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    assert json.loads((run / LOCK_FILE).read_text())["pid"] == holder.pid  # its record outlived it
    with caplog.at_level(logging.WARNING, logger="curate.run_lock"), run_lock(str(run)):
        assert json.loads((run / LOCK_FILE).read_text())["pid"] == os.getpid()
        assert _try_lock(run).returncode == 2
    assert f"took over a stale run lock from pid {holder.pid}" in caplog.text
    assert "that process is gone" in caplog.text
    assert (run / LOCK_FILE).read_text() == ""  # released cleanly: nothing stale for the next writer
    assert _try_lock(run).returncode == 0


def test_the_lock_is_reentrant_and_released_by_the_outermost_holder(tmp_path: Path) -> None:
    run = tmp_path / "run"
    acquire_run_lock(str(run))
    acquire_run_lock(str(run))  # `curate run` holds it, and each of its stages asks again
    release_run_lock(str(run))
    refused = _try_lock(run)
    assert refused.returncode == 2 and f"pid {os.getpid()}" in refused.stderr
    release_run_lock(str(run))
    assert not holds_run_lock(str(run))
    assert _try_lock(run).returncode == 0


def test_a_holder_that_exits_normally_releases_the_lock(holder: subprocess.Popen[str], tmp_path: Path) -> None:
    assert holder.stdin is not None
    holder.stdin.close()
    assert holder.wait(timeout=30) == 0
    assert _try_lock(tmp_path / "run").returncode == 0


def test_remote_run_directories_are_not_locked() -> None:
    assert acquire_run_lock("s3a://bucket/runs/r1") is False
    release_run_lock("s3a://bucket/runs/r1")
