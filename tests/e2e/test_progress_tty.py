"""Live progress while a stage runs: an updating line on a terminal, a periodic plain line otherwise, and Spark's
status tracker as the source on Spark.

The WARCs are real pages from the shared data wrapped by support.warcs: 4 files of 100 captures, which the
local runner takes a few seconds over (more when the machine is busy).
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pexpect
import pytest
from support.warcs import real_pages, write_warc

from curate.progress import INTERVAL_ENV, PROGRESS_ENV, StageProgress

CURATE = str(Path(sys.executable).with_name("curate"))
FILES = 4
# `01_extract  files 2/4  1,234 rows  410 rows/s  ETA 0:03  56 dropped  elapsed 0:04`
LINE = re.compile(
    r"01_extract  files (\d+)/(\d+)  ([\d,]+) rows  ([\d,]+|-) rows/s  ETA ([\d:]+|-)  ([\d,]+) dropped  elapsed ([\d:]+)"
)


@pytest.fixture(scope="module")
def warc_dir(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("progress-warcs")
    pages = real_pages(shared_data)
    for number in range(FILES):
        write_warc(pages[number * 100 : (number + 1) * 100], directory / f"part-{number}.warc.gz")
    return directory


def _env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in (PROGRESS_ENV, INTERVAL_ENV)}
    return {**env, **extra}


def test_the_terminal_line_changes_while_ingest_runs(warc_dir: Path, tmp_path: Path) -> None:
    child = pexpect.spawn(
        CURATE,
        ["ingest", "--local-runner", "--input", str(warc_dir), "--out", str(tmp_path / "run")],
        env=_env(COLUMNS="200"),
        dimensions=(40, 200),
        encoding="utf-8",
        timeout=120,
    )
    child.expect(pexpect.EOF)
    child.close()
    screen = child.before
    assert child.exitstatus == 0, screen[-3000:]
    # Each refresh rewrites the same line: carriage return, erase line, new text.
    shown = [match.groups() for match in LINE.finditer(screen)]
    assert len(set(shown)) >= 2, screen[-3000:]
    # Files count when read, and the reader batches records across files, so files may advance in steps;
    # the rows written must advance between refreshes.
    files_done = [int(groups[0]) for groups in shown]
    rows_written = [int(groups[2].replace(",", "")) for groups in shown]
    assert files_done == sorted(files_done) and rows_written == sorted(rows_written)
    assert rows_written[-1] > rows_written[0], screen[-3000:]
    assert {int(groups[1]) for groups in shown} == {FILES}
    assert "\x1b[2K" in screen  # updated in place, not printed line after line
    # The live line is gone once the stage commits: the summary table follows.
    assert "01_extract" in screen.rsplit("\x1b[2K", 1)[-1] and "output:" in screen


def test_a_plain_line_every_interval_without_a_terminal(warc_dir: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [CURATE, "ingest", "--local-runner", "--input", str(warc_dir), "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(**{INTERVAL_ENV: "0.5"}),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("progress: ")]
    assert len(lines) >= 2 and all(LINE.search(line) for line in lines), done.stderr[-3000:]
    assert "\x1b[" not in done.stderr


def test_spark_tasks_are_followed_from_the_status_tracker(spark) -> None:  # type: ignore[no-untyped-def]
    class Plain(io.StringIO):
        def isatty(self) -> bool:
            return False

    def slow(batches):  # type: ignore[no-untyped-def]
        for batch in batches:
            time.sleep(0.4)
            yield batch

    stream = Plain()
    os.environ[INTERVAL_ENV] = "0.5"
    try:
        progress = StageProgress("spark_stage", spark=True, stream=stream).start()
        time.sleep(0.8)  # the first poll marks where this stage's Spark stages begin
        frame = spark.range(0, 6000, numPartitions=6)
        frame.mapInArrow(slow, frame.schema).count()
        time.sleep(1.2)
        progress.stop()
    finally:
        os.environ.pop(INTERVAL_ENV, None)
    lines = stream.getvalue().splitlines()
    tasks = [tuple(map(int, m.groups())) for m in re.finditer(r"spark_stage  tasks (\d+)/(\d+)", stream.getvalue())]
    assert lines and all(line.startswith("progress: spark_stage") for line in lines)
    assert tasks and tasks[-1][0] == tasks[-1][1] >= 6, lines
    assert len({done for done, _ in tasks}) >= 2, lines  # seen while the tasks were finishing
