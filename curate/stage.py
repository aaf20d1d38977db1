"""Stages: one Parquet dataset in (or a list of files), one Parquet dataset out, plus a manifest.

Layout of a stage directory:

    <run>/<NN>_<stage>/part-*.parquet      kept rows
    <run>/<NN>_<stage>/_rejected/*.parquet rows dropped, with `drop_reason` / `drop_detail`
    <run>/<NN>_<stage>/_manifest.json      written last

Everything is written into `<NN>_<stage>.tmp/` and renamed into place at the end, so a reader never sees
a half-written stage, and an interrupted stage is simply redone. Spark and pyarrow both ignore paths
starting with `_`, so `_rejected/` never leaks into a read of the stage.

Counts come from the written data (a Spark action on the committed Parquet), never from accumulators,
so they stay exact when Spark retries a task.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from curate.errors import ConfigError, CurateError
from curate.fingerprints import code_versions, files_fingerprint
from curate.io import fs
from curate.manifest import MANIFEST_NAME, Manifest, config_hash, fingerprint, read_manifest, write_manifest
from curate.progress import StageProgress
from curate.schema import DROP_DETAIL, DROP_REASON, NOTE_REASON, REJECTED, spark_schema, without_drop_fields
from curate.stages.registry import REJECTED_DIR
from curate.step import Step, conform, final_schema, run_steps

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

LOCAL_ROWS_PER_FILE = 50_000
LOCAL_BATCH_ROWS = 1000
# A plain name starts with a letter or digit: `.x` and `_x` are hidden from readers, `-x` reads as an option.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# Suffixes curate gives its own scratch directories beside a stage; a stage named so would overwrite one.
_SCRATCH_SUFFIXES = (".tmp", ".work", ".old")


def plain_stage_name(name: str, option: str = "--name") -> str:
    """`name` if it is one plain directory name (no separators, not empty, not `.`/`..`), else a ConfigError."""
    if not _PLAIN_NAME.fullmatch(name) or name.endswith(_SCRATCH_SUFFIXES):
        raise ConfigError(
            f"{option} {name!r}: a stage name is one plain directory name inside the run "
            "(letters, digits, '.', '_', '-'; not empty, no '/', not ending in .tmp/.work/.old), e.g. 03_near_dedup"
        )
    return name


def checked_stage_path(name: str, option: str = "stage") -> str:
    """A stage's path relative to the run: plain names joined by '/' (`iter-01/02_math_score`), nothing else."""
    for part in name.split("/"):
        if not _PLAIN_NAME.fullmatch(part) or part.endswith(_SCRATCH_SUFFIXES):
            plain_stage_name(name, option)
    return name


@dataclass
class RunContext:
    """Where a run lives and how it executes. `runner` is "spark" (default) or "local" (pyarrow loop)."""

    run_dir: str
    runner: str = "spark"
    master: str | None = None
    force: bool = False
    spark_conf: dict[str, str] = field(default_factory=dict)
    _spark: SparkSession | None = None

    @property
    def spark(self) -> SparkSession:
        if self._spark is None:
            from curate.runners.spark import build_session

            self._spark = build_session(self.master, extra_conf=self.spark_conf)
        return self._spark

    def use_session(self, session: SparkSession) -> RunContext:
        self._spark = session
        return self

    def stage_dir(self, name: str) -> str:
        """Where stage `name` lives; the name is checked so that no stage path leaves the run directory."""
        return fs.join(self.run_dir, *checked_stage_path(name).split("/"))


@dataclass(frozen=True)
class Inputs:
    """What one stage execution reads, and where it writes: the `inputs` of `run(ctx, inputs, config)`.

    `out` is the stage's path in the run (`03_near_dedup`, `iter-02/02_math_score`), a registry name unless a
    user named it. `stages` are finished stage directories, in the order the run function documents; each
    must have finished, and its fingerprint feeds this stage's. `files` are raw files (WARCs), fingerprinted
    by content.
    """

    out: str
    stages: tuple[str, ...] = ()
    files: tuple[str, ...] = ()


class Stage:
    """One execution of a stage, and the one context manager every stage runs in.

        with Stage(ctx, inputs, config=..., steps=[...]) as stage:
            if stage.pending:
                ...write into stage.tmp_path...
                stage.finish(rows_in=..., rows_out=..., drops=...)
        return stage.result

    Entering skips the stage when a finished manifest has the same fingerprint; otherwise it takes the run lock
    and clears the stage's own staging directory `<name>.tmp/`. Leaving after `finish` writes the manifest and
    renames the staging directory into place; leaving on an exception commits nothing and releases the lock.

    `config` is what the fingerprint and the manifest record; `input_fingerprints` cover raw inputs beyond
    `inputs.files` (a seed corpus); `code` names classes, functions or modules (beyond the Step classes in
    `steps`) whose source, when edited, must re-run the stage.
    """

    def __init__(
        self,
        ctx: RunContext,
        inputs: Inputs,
        *,
        config: dict[str, Any],
        steps: list[str],
        input_fingerprints: Iterable[str] = (),
        code: Iterable[Any] = (),
    ) -> None:
        name = inputs.out
        self.ctx = ctx
        self.name = name
        self.config = config
        self.steps = steps
        self.inputs = list(inputs.stages)
        self.path = ctx.stage_dir(name)
        self.tmp_path = self.path + ".tmp"
        fingerprints = list(input_fingerprints)
        if inputs.files:
            fingerprints.append(files_fingerprint(list(inputs.files)))
        self.input_records: list[dict[str, str]] = []
        for input_dir in self.inputs:
            upstream = read_manifest(input_dir)
            if upstream is None:
                raise CurateError(f"stage {name} needs {input_dir}, which has not finished: run that stage first")
            fingerprints.append(upstream.fingerprint)
            self.input_records.append({"path": input_dir, "fingerprint": upstream.fingerprint})
        self.config_hash = config_hash(config, steps)
        self.code_versions = code_versions(steps, code)
        self.fingerprint = fingerprint(self.config_hash, fingerprints, self.code_versions)
        self.manifest: Manifest | None = None
        self._outcome: dict[str, Any] | None = None
        self._started = 0.0
        self._locked = False
        self.progress = StageProgress(name, spark=ctx.runner != "local")

    def __enter__(self) -> Stage:
        done = self._finished()
        if done is not None:
            log.info("stage %s already finished (fingerprint %s): skipped", self.name, done.fingerprint)
            self.manifest = done
            return self
        try:
            self._begin()
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        try:
            if exc_type is None and self.manifest is None:
                self._commit()
        finally:
            self.progress.stop()
            self._release()

    @property
    def result(self) -> Manifest:
        """The stage's manifest once it was skipped or committed."""
        if self.manifest is None:
            raise CurateError(f"stage {self.name} has not finished")
        return self.manifest

    @property
    def pending(self) -> bool:
        """True when the stage must run (no matching finished manifest)."""
        return self.manifest is None

    def finish(
        self,
        *,
        rows_in: int,
        rows_out: int,
        drops: dict[str, int],
        problems: list[dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """The counts the manifest records; leaving the `with` block commits them."""
        self._outcome = {"rows_in": rows_in, "rows_out": rows_out, "drops": drops, "problems": problems, "extra": extra}

    def _finished(self) -> Manifest | None:
        """The committed manifest if this exact stage (config, steps, code, inputs) already ran."""
        if self.ctx.force:
            return None
        manifest = read_manifest(self.path)
        if manifest is not None and manifest.fingerprint == self.fingerprint:
            return manifest
        return None

    def _begin(self) -> None:
        """Lock the run directory (held until the commit) and clear this stage's own staging directory."""
        from curate.run_lock import acquire_run_lock

        acquire_run_lock(self.ctx.run_dir)
        self._locked = True
        self._check_replaceable()
        self._started = time.monotonic()
        self.progress.start()
        fs.remove_tree(self.tmp_path)
        fs.make_dirs(self.tmp_path.rsplit("/", 1)[0])

    def _release(self) -> None:
        if self._locked:
            from curate.run_lock import release_run_lock

            release_run_lock(self.ctx.run_dir)
            self._locked = False

    def _check_replaceable(self) -> None:
        """Committing replaces `self.path`: allowed only for an earlier output of a stage (or an empty directory)."""
        if not fs.exists(self.path) or fs.exists(fs.join(self.path, MANIFEST_NAME)):
            return
        local = fs.local_path(self.path)
        if fs.is_local(self.path) and os.path.isdir(local) and not os.listdir(local):
            return
        raise ConfigError(
            f"{self.path} exists and is not a curate stage (no {MANIFEST_NAME}): "
            "move it away or give the stage another name"
        )

    def _commit(self) -> Manifest:
        if self._outcome is None:
            raise CurateError(f"stage {self.name} ended without recording its counts (Stage.finish)")
        self.progress.stop()
        outcome = self._outcome
        drops = dict(outcome["drops"])
        extra = outcome["extra"] or {}
        notes = drops.pop(NOTE_REASON, 0)
        if notes:
            extra = {**extra, "notes": notes}
        manifest = Manifest(
            stage=self.name,
            fingerprint=self.fingerprint,
            config_hash=self.config_hash,
            config=self.config,
            steps=self.steps,
            inputs=self.input_records,
            rows_in=outcome["rows_in"],
            rows_out=outcome["rows_out"],
            drops=dict(sorted(drops.items())),
            runner=self.ctx.runner if self.ctx.runner == "local" else f"spark:{self.ctx.master or 'default'}",
            wall_seconds=round(time.monotonic() - self._started, 3),
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            problems=outcome["problems"] or [],
            extra=extra,
            code=self.code_versions,
        )
        if not fs.exists(self.tmp_path):
            fs.make_dirs(self.tmp_path)
        write_manifest(self.tmp_path, manifest)
        self._check_replaceable()
        if fs.exists(self.path):
            fs.remove_tree(self.path)
        fs.rename(self.tmp_path, self.path)
        self.manifest = manifest
        return manifest


# --- writing a stage's output -------------------------------------------------------------------------


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


class _LocalParquetSink:
    """Rotating Parquet files for the local runner (Spark names its own parts)."""

    def __init__(self, directory: str, schema: pa.Schema, rows_per_file: int = LOCAL_ROWS_PER_FILE) -> None:
        self.directory = fs.local_path(directory)
        self.schema = schema
        self.rows_per_file = rows_per_file
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._file_rows = 0
        self._file_index = 0
        fs.make_dirs(self.directory)

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        if self._writer is None or self._file_rows >= self.rows_per_file:
            self._open_next()
        assert self._writer is not None
        self._writer.write_batch(batch)
        self._file_rows += batch.num_rows
        self.rows += batch.num_rows

    def _open_next(self) -> None:
        if self._writer is not None:
            self._writer.close()
        path = fs.join(self.directory, f"part-{self._file_index:05d}.parquet")
        self._writer = pq.ParquetWriter(path, self.schema, compression="zstd")
        self._file_index += 1
        self._file_rows = 0

    def close(self) -> None:
        if self._writer is None:
            self._open_next()  # an empty dataset still has a file carrying its schema
        assert self._writer is not None
        self._writer.close()


def write_local_output(
    stage: Stage,
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    *,
    count_by: tuple[str, ...] = (),
    collect_reasons: tuple[str, ...] = (),
) -> OutputCounts:
    """Local counterpart of `write_spark_output` for batches carrying drop columns."""
    import pyarrow.compute as pc

    kept_schema = without_drop_fields(schema)
    kept_sink = _LocalParquetSink(stage.tmp_path, kept_schema)
    rejected_sink = _LocalParquetSink(fs.join(stage.tmp_path, REJECTED_DIR), REJECTED)
    keys = [*count_by, DROP_REASON]
    counts: dict[tuple[Any, ...], int] = {}
    collected: list[dict[str, Any]] = []
    for batch in batches:
        if DROP_REASON not in batch.schema.names:
            batch = conform(batch, schema)
        grouped = pa.Table.from_batches([batch.select(keys)]).group_by(keys).aggregate([([], "count_all")])
        for row in grouped.to_pylist():
            key = tuple(row[k] for k in keys)
            counts[key] = counts.get(key, 0) + row["count_all"]
        dropped_mask = pc.is_valid(batch.column(DROP_REASON))
        kept_sink.write(conform(batch.filter(pc.invert(dropped_mask)), kept_schema))
        dropped = batch.filter(dropped_mask)
        stage.progress.output(batch.num_rows, dropped.num_rows)
        if dropped.num_rows:
            rejected_sink.write(conform(dropped, REJECTED))
            if collect_reasons:
                wanted = dropped.filter(pc.is_in(dropped.column(DROP_REASON), pa.array(collect_reasons)))
                collected.extend(conform(wanted, REJECTED).to_pylist())
    kept_sink.close()
    rejected_sink.close()
    groups = [{**dict(zip(keys, key, strict=True)), "count": n} for key, n in counts.items()]
    return OutputCounts(groups=groups, keys=keys, collected=collected)


# --- running a chain of steps as a stage --------------------------------------------------------------


def read_dataset_batches(path: str, batch_rows: int = LOCAL_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """Batches of a stage's Parquet dataset in a deterministic order (file name, then row order)."""
    import pyarrow.dataset as ds

    dataset = ds.dataset(fs.local_path(path), format="parquet", ignore_prefixes=[".", "_"])
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

                out = map_steps(df, steps, input_schema)
                counts = write_spark_output(stage, out, **options)
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
    import pyarrow.dataset as ds

    return ds.dataset(fs.local_path(stage_dir), format="parquet", ignore_prefixes=[".", "_"]).count_rows()


def read_stage_table(stage_dir: str, columns: list[str] | None = None) -> pa.Table:
    """A finished stage's kept rows as one Arrow table (local paths; small datasets and tests)."""
    import pyarrow.dataset as ds

    return ds.dataset(fs.local_path(stage_dir), format="parquet", ignore_prefixes=[".", "_"]).to_table(columns=columns)


def read_rejected_table(stage_dir: str) -> pa.Table:
    import pyarrow.dataset as ds

    return ds.dataset(fs.local_path(fs.join(stage_dir, REJECTED_DIR)), format="parquet").to_table()
