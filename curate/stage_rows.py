"""A stage's rows: kept rows and `_rejected/` written from Spark or from local batches with exact counts by reason,
read back, and a chain of steps run as a whole stage (`run_step_stage`).

Counts come from the written data (a Spark action on the persisted rows), never from accumulators, so they
stay exact when Spark retries a task.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from curate.io import fs
from curate.manifest import Manifest, read_manifest
from curate.schema import DROP_DETAIL, DROP_REASON, REJECTED, spark_schema, without_drop_fields
from curate.stage import Inputs, RunContext, Stage
from curate.stages.registry import REJECTED_DIR
from curate.step import Step, conform, final_schema, run_steps

if TYPE_CHECKING:
    import pyarrow.dataset as ds
    from pyspark.sql import DataFrame


LOCAL_ROWS_PER_FILE = 50_000


LOCAL_BATCH_ROWS = 1000


def _rejected_columns(schema: pa.Schema) -> list[str]:
    return [f.name for f in REJECTED if f.name in schema.names]


@dataclass
class OutputCounts:
    """Row counts of a stage's output by `drop_reason` (None = kept) and optional extra keys."""

    groups: list[dict[str, Any]]
    keys: list[str]
    # Rejected rows whose reason was asked for in `collect_reasons` (file-level problems, notes).
    collected: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows_out(self) -> int:
        return sum(g["count"] for g in self.groups if g[DROP_REASON] is None)

    @property
    def drops(self) -> dict[str, int]:
        drops: dict[str, int] = {}
        for group in self.groups:
            reason = group[DROP_REASON]
            if reason is not None:
                drops[reason] = drops.get(reason, 0) + group["count"]
        return drops


def write_spark_output(
    stage: Stage, df: DataFrame, *, count_by: tuple[str, ...] = (), collect_reasons: tuple[str, ...] = ()
) -> OutputCounts:
    """Write a DataFrame that carries drop columns: kept rows to the stage, dropped rows to `_rejected/`.

    Counts are one aggregation over the persisted rows: an action on materialised data, exact under task
    retries (accumulators are not), and the same rows the two writes then store.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    if DROP_REASON not in df.columns:
        df = df.withColumn(DROP_REASON, F.lit(None).cast("string")).withColumn(DROP_DETAIL, F.lit(None).cast("string"))
    # The count and both writes read the same rows; persist so the (deterministic) steps run once per row.
    df = df.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        keys = [*count_by, DROP_REASON]
        groups = [row.asDict() for row in df.groupBy(*keys).count().collect()]
        collected: list[dict[str, Any]] = []
        if collect_reasons:
            wanted = [c for c in REJECTED.names if c in df.columns]
            collected = [
                row.asDict() for row in df.filter(F.col(DROP_REASON).isin(*collect_reasons)).select(*wanted).collect()
            ]
        kept = df.filter(F.col(DROP_REASON).isNull()).drop(DROP_REASON, DROP_DETAIL)
        rejected_types = {f.name: f.dataType for f in spark_schema(REJECTED).fields}
        rejected = df.filter(F.col(DROP_REASON).isNotNull()).select(
            *[
                (F.col(name) if name in df.columns else F.lit(None)).cast(rejected_types[name]).alias(name)
                for name in REJECTED.names
            ]
        )
        kept.write.mode("overwrite").option("compression", "zstd").parquet(fs.to_uri(stage.tmp_path))
        rejected_path = fs.join(stage.tmp_path, REJECTED_DIR)
        rejected.coalesce(1).write.mode("overwrite").option("compression", "zstd").parquet(fs.to_uri(rejected_path))
    finally:
        df.unpersist()
    return OutputCounts(groups=groups, keys=keys, collected=collected)


class LocalParquetSink:
    """Rotating Parquet files for the local runner (Spark names its own parts)."""

    def __init__(self, directory: str, schema: pa.Schema, rows_per_file: int = LOCAL_ROWS_PER_FILE) -> None:
        self.directory = fs.local_path(directory)
        # Without the schema's metadata: a schema read from Spark-written files carries Spark's own copy of
        # the columns (`org.apache.spark.sql.parquet.row.metadata`), and Spark reads a file by that copy, so
        # a stage that adds columns to such an input would lose them to a later Spark read.
        self.schema = schema.remove_metadata()
        self.rows_per_file = rows_per_file
        # (path, rows) of each file written, in order.
        self.files: list[list[Any]] = []
        self._writer: pq.ParquetWriter | None = None
        fs.make_dirs(self.directory)

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        if self._writer is None or self.files[-1][1] >= self.rows_per_file:
            self._open_next()
        assert self._writer is not None
        self._writer.write_batch(batch)
        self.files[-1][1] += batch.num_rows

    def _open_next(self) -> None:
        if self._writer is not None:
            self._writer.close()
        path = fs.join(self.directory, f"part-{len(self.files):05d}.parquet")
        self._writer = pq.ParquetWriter(path, self.schema, compression="zstd")
        self.files.append([path, 0])

    def close(self) -> None:
        if self._writer is None:
            self._open_next()  # an empty dataset still has a file carrying its schema
        assert self._writer is not None
        self._writer.close()


class StageRowsWriter:
    """Batches carrying drop columns to Parquet: kept rows into `directory`, dropped rows into its `_rejected/`,
    counted by `count_by` + `drop_reason`, with the dropped rows of `collect_reasons` kept aside.

    The local runner writes a stage with one; under Spark, each Python worker writes its partition with one
    (curate.runners.worker_writes)."""

    def __init__(
        self,
        directory: str,
        schema: pa.Schema,
        *,
        count_by: tuple[str, ...] = (),
        collect_reasons: tuple[str, ...] = (),
        on_batch: Callable[[int, int], None] | None = None,
    ) -> None:
        self.schema = schema
        self.kept_schema = without_drop_fields(schema)
        self.kept = LocalParquetSink(directory, self.kept_schema)
        self.rejected = LocalParquetSink(fs.join(directory, REJECTED_DIR), REJECTED)
        self.keys = [*count_by, DROP_REASON]
        self.collect_reasons = collect_reasons
        self.counts: dict[tuple[Any, ...], int] = {}
        self.collected: list[dict[str, Any]] = []
        self._on_batch = on_batch

    def write(self, batch: pa.RecordBatch) -> None:
        import pyarrow.compute as pc

        if DROP_REASON not in batch.schema.names:
            batch = conform(batch, self.schema)
        grouped = pa.Table.from_batches([batch.select(self.keys)]).group_by(self.keys).aggregate([([], "count_all")])
        for row in grouped.to_pylist():
            key = tuple(row[k] for k in self.keys)
            self.counts[key] = self.counts.get(key, 0) + row["count_all"]
        dropped_mask = pc.is_valid(batch.column(DROP_REASON))
        self.kept.write(conform(batch.filter(pc.invert(dropped_mask)), self.kept_schema))
        dropped = batch.filter(dropped_mask)
        if self._on_batch is not None:
            self._on_batch(batch.num_rows, dropped.num_rows)
        if dropped.num_rows:
            self.rejected.write(conform(dropped, REJECTED))
            if self.collect_reasons:
                wanted = dropped.filter(pc.is_in(dropped.column(DROP_REASON), pa.array(self.collect_reasons)))
                self.collected.extend(conform(wanted, REJECTED).to_pylist())

    def close(self) -> OutputCounts:
        self.kept.close()
        self.rejected.close()
        return output_counts(self.counts, self.keys, self.collected)


def output_counts(counts: dict[tuple[Any, ...], int], keys: list[str], collected: list[dict[str, Any]]) -> OutputCounts:
    groups = [{**dict(zip(keys, key, strict=True)), "count": n} for key, n in counts.items()]
    return OutputCounts(groups=groups, keys=keys, collected=collected)


def write_local_output(
    stage: Stage,
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    *,
    count_by: tuple[str, ...] = (),
    collect_reasons: tuple[str, ...] = (),
) -> OutputCounts:
    """Local counterpart of `write_spark_output` for batches carrying drop columns."""
    writer = StageRowsWriter(
        stage.tmp_path, schema, count_by=count_by, collect_reasons=collect_reasons, on_batch=stage.progress.output
    )
    for batch in batches:
        writer.write(batch)
    return writer.close()


def stage_dataset(path: str) -> ds.Dataset:
    """A stage's Parquet rows on local disk as a pyarrow dataset (side directories and hidden files left out)."""
    import pyarrow.dataset as ds

    return ds.dataset(fs.local_path(path), format="parquet", ignore_prefixes=[".", "_"])


def read_dataset_batches(path: str, batch_rows: int = LOCAL_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """Batches of a stage's Parquet dataset in a deterministic order (file name, then row order)."""
    dataset = stage_dataset(path)
    for fragment in sorted(dataset.get_fragments(), key=lambda f: f.path):
        yield from fragment.to_batches(batch_size=batch_rows)


def run_step_stage(
    ctx: RunContext,
    inputs: Inputs,
    steps: list[Step],
    *,
    input_schema: pa.Schema,
    config: dict[str, Any] | None = None,
    count_by: tuple[str, ...] = (),
    collect_reasons: tuple[str, ...] = (),
    accounting: Callable[[OutputCounts], tuple[list[dict[str, Any]], dict[str, Any]]] | None = None,
    rows_in: Callable[[OutputCounts], int] | None = None,
) -> Manifest:
    """Run row-local `steps` over one finished stage (`inputs.stages`) or over raw files (`inputs.files`).

    `accounting(counts)` turns the output counts (grouped by `count_by` and reason, plus the collected rows
    of `collect_reasons`) into problems and extra manifest fields. `rows_in(counts)` computes the records-in
    figure when it is not the input row count.
    """
    step_config = {"steps": {step.name: step.config() for step in steps}, **(config or {})}
    source_files = list(inputs.files) if inputs.files else None
    source_stage = inputs.stages[0] if inputs.stages else None
    with Stage(ctx, inputs, config=step_config, steps=[step.name for step in steps]) as stage:
        if stage.pending:
            out_schema = final_schema(steps, input_schema)
            options = {"count_by": count_by, "collect_reasons": collect_reasons}
            if ctx.runner == "local":
                if source_files is not None:
                    batches: Iterable[pa.RecordBatch] = (
                        pa.RecordBatch.from_pydict({"warc_path": [path]}, schema=input_schema) for path in source_files
                    )
                    n_input = len(source_files)
                else:
                    assert source_stage is not None
                    batches = read_dataset_batches(source_stage)
                    n_input = _local_count(source_stage)
                stage.progress.expect(n_input, "files" if source_files is not None else "rows")
                batches = stage.progress.count_inputs(batches)
                counts = write_local_output(stage, run_steps(steps, batches, input_schema), out_schema, **options)
            else:
                spark = ctx.spark
                if source_files is not None:
                    from curate.io.warc_sources import warc_files_frame

                    n_input = len(source_files)
                    # Paths (streamed by the executors), or file contents where only Hadoop can read the scheme.
                    df, input_schema = warc_files_frame(spark, source_files)
                else:
                    assert source_stage is not None
                    df = spark.read.parquet(fs.to_uri(source_stage))
                    n_input = count_rows(ctx, source_stage)
                from curate.runners.spark import map_steps
                from curate.runners.worker_writes import workers_can_write, write_from_workers

                if workers_can_write(ctx, stage):
                    counts = write_from_workers(stage, df, steps, input_schema, **options)
                else:
                    counts = write_spark_output(stage, map_steps(df, steps, input_schema), **options)
            problems, extra = accounting(counts) if accounting else ([], {})
            records_in = rows_in(counts) if rows_in else n_input
            stage.finish(
                rows_in=records_in, rows_out=counts.rows_out, drops=counts.drops, problems=problems, extra=extra
            )
    return stage.result


def count_rows(ctx: RunContext, stage_dir: str) -> int:
    """Rows of a finished stage, from its manifest (no scan)."""
    manifest = read_manifest(stage_dir)
    if manifest is not None:
        return manifest.rows_out
    if ctx.runner == "local":
        return _local_count(stage_dir)
    return int(ctx.spark.read.parquet(fs.to_uri(stage_dir)).count())


def _local_count(stage_dir: str) -> int:
    return int(stage_dataset(stage_dir).count_rows())


def read_stage_table(stage_dir: str, columns: list[str] | None = None) -> pa.Table:
    """A finished stage's kept rows as one Arrow table (local paths; small datasets and tests)."""
    return stage_dataset(stage_dir).to_table(columns=columns)


def read_rejected_table(stage_dir: str) -> pa.Table:
    import pyarrow.dataset as ds

    return ds.dataset(fs.local_path(fs.join(stage_dir, REJECTED_DIR)), format="parquet").to_table()
