"""Live progress of a running stage: work units done of total, rows, rows/s, ETA and drops so far.

On a terminal one line updates in place (rich) and disappears when the stage commits; otherwise a plain line is
printed every CURATE_PROGRESS_SECONDS (default 30), so a log of a long run shows it alive. CURATE_PROGRESS=0 turns
both off.

Where the numbers come from:
- Spark: a daemon thread polls the driver's status store. Units are tasks of the Spark stages launched since
  this curate stage began (a WARC file is one task when ingesting, so tasks done are files done); rows are the
  records those Spark stages have written. Both move when a task finishes. Drops are not known before the
  stage's counting action, so they are not shown.
- Local runner: the stage loop reports every input batch (a file, or a batch of rows) and every output batch with
  its drops.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, TypeVar

PROGRESS_ENV = "CURATE_PROGRESS"
INTERVAL_ENV = "CURATE_PROGRESS_SECONDS"
DEFAULT_INTERVAL_S = 30.0
TTY_REFRESH_S = 0.5

T = TypeVar("T")


def _duration(seconds: float) -> str:
    hours, rest = divmod(round(seconds), 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


@dataclass(frozen=True)
class Snapshot:
    stage: str
    elapsed: float
    done: int
    total: int | None
    unit: str
    rows: int
    drops: int | None
    # Seconds left, when the current work's pace is known.
    eta: float | None

    def line(self) -> str:
        parts = [self.stage]
        if self.total:
            parts.append(f"{self.unit} {self.done:,}/{self.total:,}")
        if self.rows or self.drops is not None:
            # On Spark, rows are known once write tasks finish: until then the line shows tasks only.
            parts.append(f"{self.rows:,} rows")
            parts.append(f"{self.rows / self.elapsed:,.0f} rows/s" if self.elapsed > 0 else "- rows/s")
        parts.append(f"ETA {_duration(self.eta)}" if self.eta is not None else "ETA -")
        if self.drops is not None:
            parts.append(f"{self.drops:,} dropped")
        parts.append(f"elapsed {_duration(self.elapsed)}")
        return "  ".join(parts)


class StageProgress:
    """Progress of one stage, shown while it runs. `spark=True` follows Spark's status store from a thread."""

    def __init__(self, stage: str, *, spark: bool, stream: IO[str] | None = None) -> None:
        self.stage = stage
        self._spark = spark
        self._stream = stream or sys.stderr
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._done = 0
        self._total: int | None = None
        self._unit = "tasks" if spark else "inputs"
        self._rows = 0
        self._drops: int | None = None if spark else 0
        self._eta: float | None = None
        self._first_spark_job: int | None = None
        # Spark stage id -> (first seen, tasks completed, when that count was first seen).
        self._stage_pace: dict[int, tuple[float, int, float]] = {}
        self._thread: threading.Thread | None = None
        self._live: Any = None

    # --- fed by the local runner ---------------------------------------------------------------------------

    def expect(self, total: int, unit: str) -> None:
        with self._lock:
            self._total, self._unit = total, unit

    def count_inputs(self, batches: Iterable[T]) -> Iterator[T]:
        """Pass `batches` through, counting each one's rows (a file path batch is one row: one file) as done."""
        for batch in batches:
            yield batch
            with self._lock:
                self._done += int(getattr(batch, "num_rows", 1))
                self._eta = self._local_eta()

    def output(self, rows: int, dropped: int) -> None:
        with self._lock:
            self._rows += rows - dropped
            self._drops = (self._drops or 0) + dropped

    def _local_eta(self) -> float | None:
        if not self._total or not self._done:
            return None
        elapsed = time.monotonic() - self._started
        return elapsed / self._done * max(0, self._total - self._done)

    # --- Spark ---------------------------------------------------------------------------------------------

    def _poll_spark(self) -> None:
        from pyspark import SparkContext

        sc = SparkContext._active_spark_context
        if sc is None:
            return
        tracker = sc.statusTracker()
        jobs = list(tracker.getJobIdsForGroup(None)) + list(tracker.getActiveJobsIds())
        if self._first_spark_job is None:
            # Jobs already there belong to earlier curate stages (the session outlives them).
            self._first_spark_job = max(jobs, default=-1) + 1
            return
        stage_ids: set[int] = set()
        for job_id in set(jobs):
            job = tracker.getJobInfo(job_id) if job_id >= self._first_spark_job else None
            if job is not None:
                stage_ids.update(int(stage_id) for stage_id in job.stageIds)
        # The status store has what the public tracker lacks: records written, and which stages were skipped
        # (their shuffle output was reused; they never run, so they would hold the task count below its total).
        store = sc._jsc.sc().statusStore()
        rows = done = total = 0
        for stage_id in stage_ids:
            data = store.lastStageAttempt(stage_id)
            if str(data.status()) not in ("ACTIVE", "COMPLETE"):
                continue
            rows += data.outputRecords()
            done += data.numCompleteTasks()
            total += data.numTasks()
        eta = None
        now = time.monotonic()
        for stage_id in tracker.getActiveStageIds():
            active = tracker.getStageInfo(stage_id)
            if active is None:
                continue
            # The tracker gives no times: a stage's pace is measured from when this poller first saw it to when
            # it last saw a task finish, and the time since then is taken off.
            seen, completed, at = self._stage_pace.get(stage_id, (now, 0, now))
            if active.numCompletedTasks != completed:
                completed, at = active.numCompletedTasks, now
            self._stage_pace[stage_id] = (seen, completed, at)
            if completed:
                left = (at - seen) / completed * max(0, active.numTasks - completed) - (now - at)
                eta = max(eta or 0.0, left, 0.0)
        with self._lock:
            self._rows, self._done, self._total, self._eta = rows, done, total, eta

    # --- display -------------------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(
                stage=self.stage,
                elapsed=time.monotonic() - self._started,
                done=self._done,
                total=self._total,
                unit=self._unit,
                rows=self._rows,
                drops=self._drops,
                eta=self._eta,
            )

    def start(self) -> StageProgress:
        """Show the progress until `stop` (nothing when CURATE_PROGRESS=0)."""
        if os.environ.get(PROGRESS_ENV, "1").strip() == "0" or self._thread is not None:
            return self
        if self._stream.isatty():
            from rich.console import Console
            from rich.live import Live
            from rich.text import Text

            self._live = Live(
                Text(self.snapshot().line()), console=Console(file=self._stream), auto_refresh=False, transient=True
            )
            self._live.start()
        self._thread = threading.Thread(target=self._run, name=f"progress {self.stage}", daemon=True)
        self._thread.start()
        _RUNNING.add(self)
        return self

    def _run(self) -> None:
        interval = TTY_REFRESH_S if self._live is not None else _plain_interval()
        next_line = time.monotonic() + interval
        while not self._stop.wait(TTY_REFRESH_S):
            if self._spark:
                # A display must never fail a stage: the JVM may be stopping, or a stage list changing.
                with contextlib.suppress(Exception):
                    self._poll_spark()
            if time.monotonic() < next_line:
                continue
            next_line = time.monotonic() + interval
            line = self.snapshot().line()
            if self._live is not None:
                from rich.text import Text

                self._live.update(Text(line), refresh=True)
            else:
                self._stream.write(f"progress: {line}\n")
                self._stream.flush()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._live is not None:
            self._live.stop()
            self._live = None
        _RUNNING.discard(self)


_RUNNING: set[StageProgress] = set()


def _plain_interval() -> float:
    try:
        return max(0.5, float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL_S)))
    except ValueError:
        return DEFAULT_INTERVAL_S


def stop_all() -> None:
    """Stop every display still running: a stage that failed never reached its commit."""
    for progress in list(_RUNNING):
        progress.stop()
