"""A step stage under local Spark with each Python worker writing its own partition's Parquet.

Spark's own write of a `mapInArrow` stage hands every output batch back to the JVM, which converts the Arrow
columns to rows, persists them so that the counts and both writes read the same rows, and encodes them again
as Parquet: the JVM's work on every page's text, and on a fresh JVM the warm-up of all of that code. Here the
worker that produced a partition's batches writes them itself, with the local runner's writer
(`StageRowsWriter`), and returns only a summary: its counts by reason, the rows of the reasons collected, and
the files it wrote. The JVM carries one small row per partition.

Commit: a task attempt writes under `<stage>.tmp/_attempts/<partition>-<attempt>/`. The driver takes the
summaries `collect()` returns, which are those of the one attempt per partition that Spark counted, moves
that attempt's files into place under names set by the partition, and removes `_attempts/` (inside the
stage's scratch directory), so the files of a failed or repeated attempt never reach the stage. Counts come
from those same summaries, so they stay exact under task retries, as an action on materialised data does.

Only for a local master writing to a local run directory: there the workers and the driver share the disk.
Cluster executors, and object stores, keep Spark's writer (`write_spark_output`).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from curate.io import fs
from curate.schema import DROP_REASON, REJECTED, without_drop_fields
from curate.stage_rows import LocalParquetSink, OutputCounts, StageRowsWriter, output_counts
from curate.stages.registry import REJECTED_DIR
from curate.step import Step, final_schema, run_steps

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from curate.stage import RunContext, Stage

ATTEMPTS_DIR = "_attempts"
_SUMMARY = pa.schema([pa.field("partition", pa.int64()), pa.field("summary", pa.binary())])


def workers_can_write(ctx: RunContext, stage: Stage) -> bool:
    """Whether this stage's workers share the driver's disk: a local master and a local run directory."""
    return fs.is_local(stage.tmp_path) and str(ctx.spark.sparkContext.master).startswith("local")


class WritingStepsFunction:
    """The picklable body of `mapInArrow`: `run_steps` over the partition, written by this worker."""

    def __init__(
        self,
        steps: list[Step],
        input_schema: pa.Schema,
        directory: str,
        count_by: tuple[str, ...],
        collect_reasons: tuple[str, ...],
    ) -> None:
        self.steps = steps
        self.input_schema = input_schema
        self.directory = directory
        self.count_by = count_by
        self.collect_reasons = collect_reasons

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        task = TaskContext.get()
        assert task is not None  # mapInArrow bodies run inside a task
        partition = task.partitionId()
        attempt_dir = fs.join(self.directory, ATTEMPTS_DIR, f"{partition:05d}-{task.taskAttemptId()}")
        writer = StageRowsWriter(
            attempt_dir,
            final_schema(self.steps, self.input_schema),
            count_by=self.count_by,
            collect_reasons=self.collect_reasons,
        )
        for batch in run_steps(self.steps, batches, self.input_schema):
            writer.write(batch)
        writer.close()
        summary = {
            "counts": writer.counts,
            "collected": writer.collected,
            "kept": writer.kept.files,
            "rejected": writer.rejected.files,
        }
        yield pa.RecordBatch.from_pydict(
            {"partition": [partition], "summary": [pickle.dumps(summary, protocol=pickle.HIGHEST_PROTOCOL)]},
            schema=_SUMMARY,
        )


def write_from_workers(
    stage: Stage,
    df: DataFrame,
    steps: list[Step],
    input_schema: pa.Schema,
    *,
    count_by: tuple[str, ...] = (),
    collect_reasons: tuple[str, ...] = (),
) -> OutputCounts:
    """`df` through `steps` into the stage, each partition written by its worker; the counts of all of it."""
    from curate.runners.spark import map_in_arrow

    function = WritingStepsFunction(steps, input_schema, stage.tmp_path, count_by, collect_reasons)
    rows = map_in_arrow(df, function, _SUMMARY).collect()
    summaries = sorted(((row["partition"], pickle.loads(row["summary"])) for row in rows), key=lambda r: r[0])
    counts: dict[tuple[Any, ...], int] = {}
    collected: list[dict[str, Any]] = []
    for _, summary in summaries:
        for key, n in summary["counts"].items():
            counts[key] = counts.get(key, 0) + n
        collected.extend(summary["collected"])
    kept_schema = without_drop_fields(final_schema(steps, input_schema))
    _commit([(p, s["kept"]) for p, s in summaries], stage.tmp_path, kept_schema)
    _commit([(p, s["rejected"]) for p, s in summaries], fs.join(stage.tmp_path, REJECTED_DIR), REJECTED)
    fs.remove_tree(fs.join(stage.tmp_path, ATTEMPTS_DIR))
    return output_counts(counts, [*count_by, DROP_REASON], collected)


def _commit(files_by_partition: list[tuple[int, list[list[Any]]]], directory: str, schema: pa.Schema) -> None:
    """Move the counted attempts' files with rows into `directory`; one empty file if none has rows."""
    fs.make_dirs(directory)
    moved = 0
    empty = None
    for partition, files in files_by_partition:
        for index, (path, rows) in enumerate(files):
            if rows == 0:
                empty = empty or path
                continue
            os.replace(
                fs.local_path(path), fs.local_path(fs.join(directory, f"part-{partition:05d}-{index:03d}.parquet"))
            )
            moved += 1
    if moved:
        return
    if empty is not None:
        os.replace(fs.local_path(empty), fs.local_path(fs.join(directory, "part-00000-000.parquet")))
    else:  # no partition at all (no input)
        LocalParquetSink(directory, schema).close()
