"""Export: the final corpus as size-targeted Parquet shards plus `manifest.json`, committed atomically.

The plan (Spark; under the local runner a local[*] session, as for dedup: a global sort is a shuffle):

    source stage --left joins--> EXPORT rows: iteration first selected, near-dup cluster, decontamination
    one scan, cached: (doc_id, estimated raw bytes, tokens) + a doc_id-hash sample of whole rows
    (doc_id, bytes) --range partition, sort--> per-partition totals --> global offsets
        --> cumulative bytes per row --> shard boundaries (the first doc_id of each shard)
    the sample written by the shard writer --> compressed bytes per estimated raw byte
    EXPORT rows --shard of doc_id (JVM expression)--> hash partition by shard, sort by doc_id
        --> Spark writes one file per shard --> renamed data/part-NNNNN-of-MMMMM.parquet
    per shard: size, sha256, footer rows (executors); doc_id digest (driver) --> manifest.json last
    `<out>.export-<id>.tmp` (new, this export's own) renamed to `<out>`: readers never see a half-written export

To `s3://` or `gs://` (pyarrow.fs, as for inputs): the same export is built in `<run>/_export-<id>.tmp`, then
uploaded shard by shard, each sha256 checked by reading the upload back, and `manifest.json` written last;
an earlier manifest is removed before the first upload, so a failed export leaves none.

Layout: `<out>/manifest.json` and `<out>/data/part-NNNNN-of-MMMMM.parquet` (read `<out>/data` whole with
Spark, pyarrow, DuckDB or HF datasets; the manifest lists every shard with its sha256).

Why Spark writes the shards directly (no pyarrow rewrite): partitioning by shard id already yields exactly
one file per shard, so the data is compressed once; a rewrite would read and recompress every byte again
on one machine. Spark's writer sets the row groups (`parquet.block.size`, `parquet.block.row.count.limit`).

Shard sizes are targeted, not exact: a row's Parquet size is its raw bytes times the compression ratio of
the sample, so shards land near the target (measured: within 0.5% of 100 MiB) and the last one holds the
remainder. Rows are ordered by doc_id, so names, contents and checksums depend only on input and config.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from curate import __version__
from curate.classify.tokens import DEEPSEEK_BPE, TOKENIZERS
from curate.errors import ConfigError, CurateError
from curate.io import fs
from curate.manifest import config_hash, fingerprint
from curate.run_layout import RunLayout
from curate.schema import (
    DECONTAM_CLEAN,
    DECONTAM_CONTAMINATED,
    DECONTAM_UNCHECKED,
    EXPORT,
    EXPORT_FORMAT_VERSION,
    N_TOKENS,
    spark_schema,
)
from curate.stages.dataset_card import CARD_FILE, dataset_card
from curate.stages.registry import CONTAMINATION_DIR, DUPLICATES_DIR

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from curate.stage import RunContext

log = logging.getLogger(__name__)

MiB = 2**20
EXPORT_STEP = "parquet_export_v1"
EXPORT_FORMAT = "curate-export"
MANIFEST_FILE = "manifest.json"
# Shards live in their own directory: Spark, pyarrow and HF datasets all fail on a directory of Parquet
# that also holds manifest.json, and read `<out>/data` as it is.
DATA_DIR = "data"
SHARD_COLUMN = "_shard"
SAMPLE_BYTES = 32 * MiB
_WORK_DIR = "_work"
_HASH_CHUNK = 8 * MiB
ORDER = "doc_id ascending, within and across shards"


@dataclass(frozen=True)
class ExportConfig:
    """Shard and row-group sizes. Row groups close at whichever limit comes first (Parquet's block size
    counts buffered, compressed bytes), so a scan reads ~128 MB at a time and a small document corpus
    does not get million-row groups."""

    target_shard_bytes: int = 512 * MiB
    row_group_bytes: int = 128 * MiB
    row_group_rows: int = 65_536
    compression: str = "zstd"
    # Counts tokens only if the source has no n_tokens column (scoring adds one), with the tokenizer the
    # selection's budget is counted in.
    tokenizer: str = DEEPSEEK_BPE

    def __post_init__(self) -> None:
        if self.target_shard_bytes < 64 * 1024:
            raise ConfigError(f"target shard size {self.target_shard_bytes} B: must be at least 64 KiB")
        if self.row_group_bytes < MiB or self.row_group_rows < 1:
            raise ConfigError("row groups must be at least 1 MB and 1 row")
        if self.tokenizer not in TOKENIZERS:
            raise ConfigError(f"export: unknown tokenizer {self.tokenizer!r}; choose one of {', '.join(TOKENIZERS)}")


def shard_name(index: int, count: int) -> str:
    return f"part-{index:05d}-of-{count:05d}.parquet"


# --- which stages feed the export ----------------------------------------------------------------------


@dataclass(frozen=True)
class Lineage:
    """The stages the exported columns come from (any may be absent from a run)."""

    source: str
    selects: tuple[tuple[int, str], ...]
    dedup: str | None
    decontamination: str | None

    def stages(self) -> list[str]:
        found = [self.source, *(stage for _, stage in self.selects)]
        found += [s for s in (self.dedup, self.decontamination) if s is not None]
        return list(dict.fromkeys(found))


def find_lineage(layout: RunLayout, source_stage: str | None) -> Lineage:
    if source_stage is None:
        declared = layout.final_stage
        if declared is not None and layout.manifest(declared) is None:
            raise CurateError(
                f"the run's final stage {declared} has not finished: finish the run, or export another stage with --stage"
            )
        source_stage = layout.resolve_final_stage()
        if source_stage is None:
            raise CurateError(f"{layout.run_dir} has no finished stage of documents to export: run the pipeline first")
    else:
        source_stage = layout.relative(source_stage)
    if layout.manifest(source_stage) is None:
        raise CurateError(f"stage {source_stage} has not finished in {layout.run_dir}: run it first (or check --stage)")
    return Lineage(
        source=source_stage,
        selects=tuple(layout.iteration_stages("select")),
        dedup=layout.with_side_table(DUPLICATES_DIR),
        decontamination=layout.with_side_table(CONTAMINATION_DIR),
    )


# --- the export rows (Spark) -----------------------------------------------------------------------------


def _column_or_null(df: DataFrame, name: str, type_name: str) -> Column:
    from pyspark.sql import functions as F

    return F.col(name) if name in df.columns else F.lit(None).cast(type_name)


def export_frame(spark: SparkSession, layout: RunLayout, lineage: Lineage, tokenizer: str = DEEPSEEK_BPE) -> DataFrame:
    """The source documents with every EXPORT column, lineage joined in (left joins: no row is lost)."""
    from pyspark.sql import functions as F

    def read(stage: str, *sub: str) -> DataFrame:
        return spark.read.parquet(fs.to_uri(fs.join(layout.path(stage), *sub)))

    docs = read(lineage.source)
    if "doc_id" not in docs.columns or "text" not in docs.columns:
        raise CurateError(
            f"stage {lineage.source} does not hold documents (no doc_id/text columns): pick another --stage"
        )
    if N_TOKENS.name not in docs.columns:
        from curate.classify.select import count_tokens_spark

        docs = count_tokens_spark(docs, tokenizer)

    if lineage.selects:
        firsts = None
        for iteration, stage in lineage.selects:
            ids = read(stage).select("doc_id", F.lit(iteration).cast("int").alias("iteration"))
            firsts = ids if firsts is None else firsts.unionByName(ids)
        assert firsts is not None
        docs = docs.drop("iteration").join(
            firsts.groupBy("doc_id").agg(F.min("iteration").alias("iteration")), "doc_id", "left"
        )

    if lineage.dedup is not None:
        # DUPLICATES lists removed documents; the kept one appears only as kept_doc_id.
        dups = read(lineage.dedup, DUPLICATES_DIR)
        members = dups.select("doc_id", "cluster_id").unionByName(
            dups.select(F.col("kept_doc_id").alias("doc_id"), "cluster_id")
        )
        clusters = members.groupBy("doc_id").agg(F.min("cluster_id").alias("dedup_cluster_id"))
        docs = docs.drop("dedup_cluster_id").join(clusters, "doc_id", "left")

    if lineage.decontamination is None:
        status = F.lit(DECONTAM_UNCHECKED)
    elif lineage.decontamination == lineage.source:
        status = F.lit(DECONTAM_CLEAN)
    else:
        hits = read(lineage.decontamination, CONTAMINATION_DIR).select("doc_id").distinct()
        checked = read(lineage.decontamination).select("doc_id")
        docs = docs.join(hits.withColumn("_hit", F.lit(True)), "doc_id", "left").join(
            checked.withColumn("_clean", F.lit(True)), "doc_id", "left"
        )
        status = (
            F.when(F.col("_hit"), F.lit(DECONTAM_CONTAMINATED))
            .when(F.col("_clean"), F.lit(DECONTAM_CLEAN))
            .otherwise(F.lit(DECONTAM_UNCHECKED))
        )

    derived: dict[str, Column] = {
        "domain": F.coalesce(
            _column_or_null(docs, "registered_domain", "string"), _column_or_null(docs, "host", "string")
        ),
        "n_chars": F.coalesce(_column_or_null(docs, "n_chars", "bigint"), F.char_length("text").cast("bigint")),
        "tokens": F.col(N_TOKENS.name),
        "decontamination": status,
    }
    target = spark_schema(EXPORT)
    types = {f.name: f.dataType for f in target.fields}
    selected = docs.select(
        *[
            (derived[name] if name in derived else _column_or_null(docs, name, types[name].simpleString()))
            .cast(types[name])
            .alias(name)
            for name in EXPORT.names
        ]
    )
    # Every column optional, as EXPORT declares: a column Spark knows to be non-null (a literal status, a
    # coalesce) would otherwise be written as required in one export and optional in the next. The guard
    # is on a column Spark cannot prove non-null, so the optimizer cannot fold it away.
    present = F.col("doc_id").isNotNull()
    return selected.select(
        *[F.col(f.name) if f.nullable else F.when(present, F.col(f.name)).alias(f.name) for f in selected.schema.fields]
    )


def estimated_bytes(columns: list[str]) -> Column:
    """Raw bytes of a row: string bytes plus 8 per fixed-width value. Compression is applied separately."""
    from pyspark.sql import functions as F

    strings = {f.name for f in EXPORT if pa.types.is_string(f.type)}
    size: Column = F.lit(8 * len([c for c in columns if c not in strings]))
    for name in columns:
        if name in strings:
            size = size + F.coalesce(F.octet_length(name), F.lit(0))
    return size.cast("bigint")


# --- sizing: shard boundaries from a global sort of (doc_id, bytes) -----------------------------------------

_TOTALS = pa.schema(
    [
        pa.field("first_doc_id", pa.string()),
        pa.field("rows", pa.int64()),
        pa.field("bytes", pa.int64()),
        pa.field("duplicates", pa.int64()),
    ]
)
_SHARD_PARTS = pa.schema(
    [
        pa.field("shard", pa.int64()),
        pa.field("first_doc_id", pa.string()),
        pa.field("last_doc_id", pa.string()),
        pa.field("rows", pa.int64()),
        pa.field("bytes", pa.int64()),
        pa.field("tokens", pa.int64()),
    ]
)


class _PartitionTotals:
    """mapInArrow body: one row per sorted partition, keyed by its first doc_id (not by partition index, so
    the second pass finds its offset even if Spark recomputes the partitions)."""

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow.compute as pc

        first: str | None = None
        previous: str | None = None
        rows = size = duplicates = 0
        for batch in batches:
            if batch.num_rows == 0:
                continue
            ids = batch.column("doc_id").to_pylist()
            if first is None:
                first = ids[0]
            duplicates += sum(1 for a, b in zip([previous, *ids[:-1]], ids, strict=True) if a == b)
            previous = ids[-1]
            rows += batch.num_rows
            size += int(pc.sum(batch.column("_bytes")).as_py() or 0)
        if first is not None:
            yield pa.RecordBatch.from_pylist(
                [{"first_doc_id": first, "rows": rows, "bytes": size, "duplicates": duplicates}], schema=_TOTALS
            )


class _ShardParts:
    """mapInArrow body: each row's shard is floor(bytes before it in the global order / bytes per shard);
    emits per shard its first and last doc_id and totals within this partition."""

    def __init__(self, offsets: dict[str, int], raw_bytes_per_shard: float) -> None:
        self.offsets = offsets
        self.raw_bytes_per_shard = raw_bytes_per_shard

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import numpy as np

        parts: dict[int, dict[str, Any]] = {}
        position: int | None = None
        for batch in batches:
            if batch.num_rows == 0:
                continue
            ids = batch.column("doc_id").to_pylist()
            if position is None:
                position = self.offsets[ids[0]]
            sizes = batch.column("_bytes").to_numpy(zero_copy_only=False).astype(np.int64)
            tokens = batch.column("tokens").fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
            before = position + np.cumsum(sizes) - sizes
            shards = (before // self.raw_bytes_per_shard).astype(np.int64)
            position += int(sizes.sum())
            # Rows are sorted, so shard ids are non-decreasing: each shard is one run of equal values.
            values, starts = np.unique(shards, return_index=True)
            ends = [*starts[1:].tolist(), len(shards)]
            for shard, start, end in zip(values.tolist(), starts.tolist(), ends, strict=True):
                part = parts.setdefault(shard, {"first_doc_id": ids[start], "rows": 0, "bytes": 0, "tokens": 0})
                part["last_doc_id"] = ids[end - 1]
                part["rows"] += end - start
                part["bytes"] += int(sizes[start:end].sum())
                part["tokens"] += int(tokens[start:end].sum())
        if parts:
            yield pa.RecordBatch.from_pylist([{"shard": k, **v} for k, v in sorted(parts.items())], schema=_SHARD_PARTS)


@dataclass
class ShardPlan:
    boundaries: list[str]  # first doc_id of shards 1..n-1
    shards: list[dict[str, Any]]  # per shard: first/last doc_id, rows, estimated raw bytes, tokens
    rows: int
    raw_bytes: int
    ratio: float | None  # compressed per raw byte; None: not measured (everything fits one shard)
    sample_rows: int


def shard_expression(boundaries: list[str]) -> Column:
    """The shard of `doc_id` as a balanced tree of comparisons against the shards' first doc_ids: log2(n)
    comparisons a row, evaluated in the JVM. (A Python UDF here made Spark queue every full row on disk
    while the doc_ids made the round trip to Python: a third of the export's time.)"""
    from pyspark.sql import functions as F

    doc_id = F.col("doc_id")

    def subtree(low: int, high: int) -> Column:
        if low == high:
            return F.lit(low)
        middle = (low + high + 1) // 2
        return F.when(doc_id >= F.lit(boundaries[middle - 1]), subtree(middle, high)).otherwise(
            subtree(low, middle - 1)
        )

    return subtree(0, len(boundaries)).cast("int")


@contextmanager
def _session_conf(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    previous: dict[str, str | None] = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, old in previous.items():
            if old is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, old)


# Written Parquet must read the same everywhere: timestamps as micros with UTC (Spark's INT96 default reads
# back as naive nanoseconds in pyarrow and HF datasets).
_WRITE_CONF = {"spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS"}


def _writer(df: DataFrame, config: ExportConfig) -> Any:
    return (
        df.write.mode("overwrite")
        .option("compression", config.compression)
        .option("parquet.block.size", str(config.row_group_bytes))
        .option("parquet.block.row.count.limit", str(config.row_group_rows))
        .option("maxRecordsPerFile", "0")
    )


_SAMPLE_BUCKETS = 1_000_000


def sample_condition(source_disk_bytes: int) -> Column:
    """Rows of the compression sample: a doc_id-hash sample (deterministic, whatever the partitioning) of
    about SAMPLE_BYTES of the source's size on disk, so a compressed source gives a sample a few times bigger."""
    from pyspark.sql import functions as F

    keep = max(1, min(_SAMPLE_BUCKETS, math.ceil(_SAMPLE_BUCKETS * SAMPLE_BYTES / max(source_disk_bytes, 1))))
    return F.pmod(F.xxhash64("doc_id"), F.lit(_SAMPLE_BUCKETS)) < keep


def _measure_ratio(sample: DataFrame, work: str, config: ExportConfig) -> tuple[float | None, int]:
    """Compressed bytes per estimated raw byte: the sample written by the shard writer, as one file."""
    from pyspark.sql import functions as F

    path = fs.join(work, "sample")
    _writer(sample.repartition(1).sortWithinPartitions("doc_id"), config).parquet(fs.to_uri(path))
    written = sum(size for name, size in _list_files(path) if name.endswith(".parquet"))
    measured = sample.sparkSession.read.parquet(fs.to_uri(path))
    row = measured.agg(F.count(F.lit(1)).alias("rows"), F.sum(estimated_bytes(EXPORT.names)).alias("raw")).first()
    rows, raw = (int(row["rows"]), int(row["raw"] or 0)) if row else (0, 0)
    if rows == 0 or raw == 0:
        return None, 0  # nothing to learn from: shards are then sized by raw bytes, an overestimate
    return written / raw, rows


def plan_shards(frame: DataFrame, source_disk_bytes: int, work: str, config: ExportConfig) -> ShardPlan:
    """Shard boundaries from one scan of the source: per-row sizes (and the compression sample) are cached,
    then globally sorted as a narrow (doc_id, bytes, tokens) frame."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    spark = frame.sparkSession
    partitions = int(spark.conf.get("spark.sql.shuffle.partitions") or 8)
    scanned = frame.select(
        "doc_id",
        estimated_bytes(EXPORT.names).alias("_bytes"),
        "tokens",
        F.when(sample_condition(source_disk_bytes), F.struct(*EXPORT.names)).alias("_sample"),
    ).persist(StorageLevel.MEMORY_AND_DISK)
    narrow = (
        scanned.select("doc_id", "_bytes", "tokens")
        .repartitionByRange(partitions, "doc_id")
        .sortWithinPartitions("doc_id")
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    try:
        totals = sorted(
            (r.asDict() for r in narrow.mapInArrow(_PartitionTotals(), spark_schema(_TOTALS)).collect()),
            key=lambda r: r["first_doc_id"],
        )
        duplicates = sum(r["duplicates"] for r in totals)
        if duplicates:
            raise CurateError(
                f"{duplicates} doc_ids occur more than once in the exported stage; a documents stage must have unique "
                "doc_ids: re-run the stage that produced it"
            )
        rows = sum(r["rows"] for r in totals)
        raw_total = sum(r["bytes"] for r in totals)
        if rows == 0:
            return ShardPlan([], [], 0, 0, None, 0)
        log.info("export: sized %d rows, %d raw bytes", rows, raw_total)
        ratio: float | None = None
        sample_rows = 0
        # At or under the target in raw bytes, it is one shard whatever the compression: nothing to measure.
        if raw_total > config.target_shard_bytes:
            sample = scanned.where(F.col("_sample").isNotNull()).select("_sample.*")
            ratio, sample_rows = _measure_ratio(sample, work, config)
        log.info("export: compression ratio %s from %d sampled rows", ratio, sample_rows)
        offsets, position = {}, 0
        for r in totals:
            offsets[r["first_doc_id"]] = position
            position += r["bytes"]
        assigner = _ShardParts(offsets, config.target_shard_bytes / (ratio or 1.0))
        merged: dict[int, dict[str, Any]] = {}
        parts = narrow.mapInArrow(assigner, spark_schema(_SHARD_PARTS)).collect()
        for part in sorted((r.asDict() for r in parts), key=lambda r: (r["shard"], r["first_doc_id"])):
            entry = merged.setdefault(part["shard"], {**part, "rows": 0, "bytes": 0, "tokens": 0})
            entry["last_doc_id"] = max(entry["last_doc_id"], part["last_doc_id"])
            for key in ("rows", "bytes", "tokens"):
                entry[key] += part[key]
    finally:
        narrow.unpersist()
        scanned.unpersist()
    # Shard ids come from a floor division: a single row bigger than a shard would skip an id. Renumber so
    # names never have gaps.
    shards = [merged[k] for k in sorted(merged)]
    for index, shard in enumerate(shards):
        shard["shard"] = index
    boundaries = [shard["first_doc_id"] for shard in shards[1:]]
    log.info("export plan: %d rows, %d shards, ratio %s", rows, len(shards), ratio)
    return ShardPlan(boundaries, shards, rows, raw_total, ratio, sample_rows)


def write_shards(frame: DataFrame, plan: ShardPlan, work: str, config: ExportConfig) -> str:
    """Spark writes `<work>/shards/_shard=K/<one file>` per shard, rows sorted by doc_id."""
    path = fs.join(work, "shards")
    staged = (
        frame.withColumn(SHARD_COLUMN, shard_expression(plan.boundaries))
        .repartition(len(plan.shards), SHARD_COLUMN)
        .sortWithinPartitions(SHARD_COLUMN, "doc_id")
    )
    _writer(staged, config).partitionBy(SHARD_COLUMN).parquet(fs.to_uri(path))
    return path


# --- files: listing, hashing, moving (pyarrow filesystems, so the same code serves HDFS and S3) --------


def _list_files(directory: str) -> list[tuple[str, int]]:
    """(file name, size) of the files directly inside `directory`."""
    import pyarrow.fs as pafs

    filesystem, root = fs.arrow_filesystem(directory)
    infos = filesystem.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    return sorted((info.base_name, int(info.size or 0)) for info in infos if info.type == pafs.FileType.File)


def shard_file_stats(path: str) -> dict[str, Any]:
    """Size, sha256 and footer figures of one written shard (runs on an executor)."""
    import pyarrow.parquet as pq

    filesystem, local = fs.arrow_filesystem(path)
    digest = hashlib.sha256()
    size = 0
    with filesystem.open_input_stream(local) as stream:
        while chunk := stream.read(_HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    with filesystem.open_input_file(local) as handle:
        metadata = pq.ParquetFile(handle).metadata
        return {
            "bytes": size,
            "sha256": digest.hexdigest(),
            "rows": metadata.num_rows,
            "row_groups": metadata.num_row_groups,
        }


def doc_ids_digest(paths: list[str]) -> str:
    """sha256 of every doc_id followed by a newline, in export order (= sorted), over the shards in order.

    Any reader can check a copy: `sha256("".join(id + "\\n" for id in sorted(ids)))`.
    """
    import pyarrow.parquet as pq

    digest = hashlib.sha256()
    for path in paths:
        filesystem, local = fs.arrow_filesystem(path)
        with filesystem.open_input_file(local) as handle:
            for batch in pq.ParquetFile(handle).iter_batches(columns=["doc_id"], batch_size=65_536):
                ids = batch.column(0).to_pylist()
                if ids:
                    digest.update(("\n".join(ids) + "\n").encode())
    return digest.hexdigest()


def _write_empty_shard(path: str) -> None:
    import pyarrow.parquet as pq

    filesystem, local = fs.arrow_filesystem(path)
    with filesystem.open_output_stream(local) as sink:
        pq.write_table(EXPORT.empty_table(), sink, compression="zstd")


def _move_shards(shards_dir: str, target: str, count: int) -> list[str]:
    fs.make_dirs(target)
    paths = []
    for index in range(count):
        directory = fs.join(shards_dir, f"{SHARD_COLUMN}={index}")
        files = [name for name, _ in _list_files(directory) if name.endswith(".parquet")]
        if len(files) != 1:
            raise CurateError(f"export: shard {index} was written as {len(files)} files in {directory}, expected 1")
        path = fs.join(target, shard_name(index, count))
        fs.rename(fs.join(directory, files[0]), path)
        paths.append(path)
    return paths


# --- provenance ----------------------------------------------------------------------------------------


def _git_commit() -> str | None:
    """HEAD of the checkout curate runs from, read from .git (no git process; None outside a checkout)."""
    for parent in Path(__file__).resolve().parents:
        git = parent / ".git"
        if not git.is_dir():
            continue
        try:
            head = (git / "HEAD").read_text().strip()
            if not head.startswith("ref: "):
                return head
            ref = head[5:]
            if (git / ref).is_file():
                return (git / ref).read_text().strip()
            for line in (git / "packed-refs").read_text().splitlines():
                if line.endswith(" " + ref):
                    return line.split()[0]
        except OSError:
            return None
        return None
    return None


def token_counter(layout: RunLayout, source_columns: list[str], config: ExportConfig) -> dict[str, Any]:
    """Which tokenizer the `tokens` column was counted with: the stage that added n_tokens says so."""
    from curate.classify.tokens import TokenCountStep

    if N_TOKENS.name not in source_columns:
        return {"tokenizer": config.tokenizer, "counted_by": "export", "exact": config.tokenizer == DEEPSEEK_BPE}
    configs = [(stage, layout.manifest(stage).config or {}) for stage in reversed(layout.finished())]  # type: ignore[union-attr]
    # The token count step of scoring first: a select stage records its tokenizer even when it counted nothing.
    for stage, stage_config in configs:
        tokenizer = ((stage_config.get("steps") or {}).get(TokenCountStep.name) or {}).get("tokenizer")
        if tokenizer:
            return {"tokenizer": tokenizer, "counted_by": stage, "exact": tokenizer == DEEPSEEK_BPE}
    for stage, stage_config in configs:
        tokenizer = (stage_config.get("select") or {}).get("tokenizer")
        if tokenizer:
            return {"tokenizer": tokenizer, "counted_by": stage, "exact": tokenizer == DEEPSEEK_BPE}
    return {"tokenizer": None, "counted_by": "unknown (n_tokens of the source)", "exact": None}


def _schema_doc() -> list[dict[str, Any]]:
    return [
        {
            "name": f.name,
            "type": str(f.type),
            "nullable": f.nullable,
            "description": (f.metadata or {}).get(b"description", b"").decode(),
        }
        for f in EXPORT
    ]


def read_export_manifest(out_dir: str) -> dict[str, Any] | None:
    text = fs.read_text(fs.join(out_dir, MANIFEST_FILE))
    if text is None:
        return None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError:
        return None
    if payload.get("format") != EXPORT_FORMAT or payload.get("status") != "complete":
        return None
    return dict(payload)


# --- the export ----------------------------------------------------------------------------------------


def _scratch_beside(out: str, kind: str) -> str:
    """A new sibling of `out` for this export alone: nothing already beside --out is reused or deleted.

    An interrupted export leaves its `<out>.export-<id>.tmp` behind (never touched again; safe to remove).
    """
    path = f"{out.rstrip('/')}.export-{uuid.uuid4().hex[:12]}.{kind}"
    if fs.exists(path):
        raise CurateError(f"export: scratch directory {path} already exists; run the export again")
    return path


def _note_earlier_scratch(out: str) -> None:
    if fs.is_local(out):
        for left in sorted(Path(fs.local_path(out)).parent.glob(Path(out).name + ".export-*.tmp")):
            log.warning("export: %s was left by an interrupted export; curate does not delete it", left)


def _scratch_in_run(run_dir: str) -> str:
    """Where an export to an object store is built: Spark writes shards only where Hadoop can, so inside the
    run directory (its `_` prefix keeps it out of the run's stages); the finished shards are uploaded."""
    return fs.join(run_dir, f"_export-{uuid.uuid4().hex[:12]}.tmp")


_SHARD_NAME = re.compile(r"part-\d{5}-of-\d{5}\.parquet")


def _earlier_shards(out: str) -> list[str]:
    """The shards (`data/part-*`) under an object-store `out`; raises if anything there is neither a shard nor
    the card or manifest a curate export wrote."""
    import pyarrow.fs as pafs

    filesystem, root = fs.arrow_filesystem(out)
    listed = filesystem.get_file_info(pafs.FileSelector(root.rstrip("/"), recursive=True, allow_not_found=True))
    found = []
    for info in listed:
        if info.type != pafs.FileType.File:
            continue
        relative = info.path[len(root.rstrip("/")) + 1 :]
        directory, _, name = relative.rpartition("/")
        if relative in (MANIFEST_FILE, CARD_FILE):
            continue
        if not (directory == DATA_DIR and _SHARD_NAME.fullmatch(name)):
            raise CurateError(f"{out} holds {relative}, which a curate export did not write: pick another --out")
        found.append(relative)
    return found


def publish_to_object_store(tmp: str, out: str, manifest: dict[str, Any]) -> None:
    """Upload the finished export in `tmp` to `out` (s3://, gs://): the old manifest goes first, each shard is
    uploaded and its sha256 checked by reading it back, shards of an earlier export that this one does not
    rewrite are removed, then the dataset card, and `manifest.json` last. A failure leaves `out` without a
    manifest."""
    import pyarrow.fs as pafs

    earlier = _earlier_shards(out)
    filesystem, root = fs.arrow_filesystem(out)
    root = root.rstrip("/")
    if fs.exists(fs.join(out, MANIFEST_FILE)):
        filesystem.delete_file(f"{root}/{MANIFEST_FILE}")
    local, local_root = fs.arrow_filesystem(tmp)
    for shard in manifest["shards"]:
        target = fs.join(out, shard["path"])
        pafs.copy_files(
            f"{local_root}/{shard['path']}",
            f"{root}/{shard['path']}",
            source_filesystem=local,
            destination_filesystem=filesystem,
            chunk_size=_HASH_CHUNK,
            use_threads=False,
        )
        uploaded = shard_file_stats(target)
        if (uploaded["sha256"], uploaded["bytes"], uploaded["rows"]) != (
            shard["sha256"],
            shard["bytes"],
            shard["rows"],
        ):
            raise CurateError(
                f"export: {target} read back as {uploaded['bytes']} bytes sha256 {uploaded['sha256'][:16]}, "
                f"written {shard['bytes']} bytes sha256 {shard['sha256'][:16]}: the upload is corrupt, run it again"
            )
        log.info("export: uploaded %s (%d bytes, sha256 verified)", target, uploaded["bytes"])
    current = {shard["path"] for shard in manifest["shards"]}
    for relative in earlier:
        if relative not in current:
            filesystem.delete_file(f"{root}/{relative}")
    card = fs.read_text(fs.join(tmp, CARD_FILE))
    if card is None:
        raise CurateError(f"export: {tmp} has no dataset card ({CARD_FILE}) to upload")
    fs.write_text(fs.join(out, CARD_FILE), card)
    fs.write_text(fs.join(out, MANIFEST_FILE), json.dumps(manifest, indent=2) + "\n")


def _commit(tmp: str, out: str) -> None:
    """Put the finished `tmp` where readers look. Replacing an earlier export leaves `out` absent for the
    moment between two renames (directories cannot be swapped atomically), never half-written."""
    if not fs.exists(out):
        fs.rename(tmp, out)
        return
    old = _scratch_beside(out, "old")
    fs.rename(out, old)
    fs.rename(tmp, out)
    fs.remove_tree(old)


def _check_target(out: str) -> None:
    if fs.is_object_store(out):
        _earlier_shards(out)  # only a curate export's own files may be there
        return
    if not fs.exists(out) or read_export_manifest(out) is not None:
        return
    if fs.is_local(out) and Path(fs.local_path(out)).is_dir() and not any(Path(fs.local_path(out)).iterdir()):
        return
    raise CurateError(f"{out} exists and is not a curate export: pick another --out or remove it yourself")


def run_export(
    ctx: RunContext,
    out_dir: str,
    *,
    target_shard_bytes: int = ExportConfig.target_shard_bytes,
    source_stage: str | None = None,
    config: ExportConfig | None = None,
) -> dict[str, Any]:
    """Export a run's final corpus (or `source_stage`, a stage path relative to the run) to `out_dir`.

    Returns the manifest written to `out_dir/manifest.json`. An export whose source, lineage stages and
    config are unchanged is not redone (unless `ctx.force`).
    """
    started = time.monotonic()
    config = config or ExportConfig(target_shard_bytes=target_shard_bytes)
    layout = RunLayout.load(ctx.run_dir)
    lineage = find_lineage(layout, source_stage)
    inputs = {stage: layout.manifest(stage).fingerprint for stage in lineage.stages()}  # type: ignore[union-attr]
    settings = {**asdict(config), "source_stage": lineage.source, "order": ORDER}
    digest = config_hash(settings, [EXPORT_STEP])
    export_fingerprint = fingerprint(digest, list(inputs.values()))

    remote = fs.is_object_store(out_dir)
    if remote:
        fs.check_bucket(out_dir, "--out")
    previous = read_export_manifest(out_dir)
    if previous is not None and previous.get("fingerprint") == export_fingerprint and not ctx.force:
        log.info("export in %s is up to date (fingerprint %s): skipped", out_dir, export_fingerprint)
        return previous
    _check_target(out_dir)

    if remote:
        tmp = _scratch_in_run(ctx.run_dir)
    else:
        tmp = _scratch_beside(out_dir, "tmp")
        _note_earlier_scratch(out_dir)
    fs.make_dirs(tmp)
    work = fs.join(tmp, _WORK_DIR)
    spark = ctx.spark
    counter = token_counter(layout, spark.read.parquet(fs.to_uri(layout.path(lineage.source))).columns, config)
    with _session_conf(spark, _WRITE_CONF):
        frame = export_frame(spark, layout, lineage, config.tokenizer)
        source_bytes = sum(size for name, size in _list_files(layout.path(lineage.source)) if name.endswith(".parquet"))
        plan = plan_shards(frame, source_bytes, work, config)
        log.info("export: planned %d shards in %.1f s", len(plan.shards), time.monotonic() - started)
        if plan.rows == 0:
            fs.make_dirs(fs.join(tmp, DATA_DIR))
            paths = [fs.join(tmp, DATA_DIR, shard_name(0, 1))]
            _write_empty_shard(paths[0])
            plan.shards = [{"shard": 0, "first_doc_id": None, "last_doc_id": None, "rows": 0, "bytes": 0, "tokens": 0}]
        else:
            shards_dir = write_shards(frame, plan, work, config)
            paths = _move_shards(shards_dir, fs.join(tmp, DATA_DIR), len(plan.shards))
        log.info("export: wrote %d shards at %.1f s", len(paths), time.monotonic() - started)
    stats = spark.sparkContext.parallelize(paths, max(1, len(paths))).map(shard_file_stats).collect()
    fs.remove_tree(work)
    log.info("export: checksums done at %.1f s", time.monotonic() - started)

    shards = []
    for path, planned, stat in zip(paths, plan.shards, stats, strict=True):
        if stat["rows"] != planned["rows"]:
            raise CurateError(f"export: {path} holds {stat['rows']} rows, the plan had {planned['rows']}")
        shards.append(
            {
                "name": path.rsplit("/", 1)[-1],
                "path": f"{DATA_DIR}/{path.rsplit('/', 1)[-1]}",
                "rows": stat["rows"],
                "bytes": stat["bytes"],
                "sha256": stat["sha256"],
                "row_groups": stat["row_groups"],
                "tokens": planned["tokens"],
                "first_doc_id": planned["first_doc_id"],
                "last_doc_id": planned["last_doc_id"],
            }
        )
    total_bytes = sum(s["bytes"] for s in shards)
    wall = time.monotonic() - started
    manifest: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "status": "complete",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "code_version": {"curate": __version__, "git_commit": _git_commit()},
        "run_dir": ctx.run_dir,
        "source_stage": lineage.source,
        "lineage": {
            "selects": [stage for _, stage in lineage.selects],
            "dedup": lineage.dedup,
            "decontamination": lineage.decontamination,
        },
        "input_fingerprints": inputs,
        "config": settings,
        "config_hash": digest,
        "fingerprint": export_fingerprint,
        "order": ORDER,
        "token_counter": counter,
        "schema": _schema_doc(),
        "rows": sum(s["rows"] for s in shards),
        "bytes": total_bytes,
        "tokens": sum(s["tokens"] for s in shards),
        "doc_ids_sha256": doc_ids_digest(paths),
        "shards": shards,
        "sizing": {
            "target_shard_bytes": config.target_shard_bytes,
            "estimated_raw_bytes": plan.raw_bytes,
            "compressed_per_raw_byte": None if plan.ratio is None else round(plan.ratio, 6),
            "sample_rows": plan.sample_rows,
        },
        "runner": f"spark:{ctx.master or 'default'}",
        "wall_seconds": round(wall, 3),
        "written_mb_per_s": round(total_bytes / 1e6 / wall, 2) if wall > 0 else None,
    }
    fs.write_text(fs.join(tmp, CARD_FILE), dataset_card(layout, manifest))  # before the manifest, written last
    if remote:
        try:
            publish_to_object_store(tmp, out_dir, manifest)
        finally:
            fs.remove_tree(tmp)
        return manifest
    fs.write_text(fs.join(tmp, MANIFEST_FILE), json.dumps(manifest, indent=2) + "\n")
    _commit(tmp, out_dir)
    return manifest
