"""Shards: boundaries from a global sort of (doc_id, bytes), Spark writing one file per shard, and the files' checksums."""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from curate.errors import CurateError
from curate.io import fs
from curate.runners.spark import map_in_arrow
from curate.schema import (
    EXPORT,
)
from curate.stages.export.config import HASH_CHUNK, SAMPLE_BYTES, SHARD_COLUMN, ExportConfig, shard_name
from curate.stages.export.frame import estimated_bytes

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession


log = logging.getLogger(__name__)


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
def session_conf(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
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
WRITE_CONF = {"spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS"}


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
    written = sum(size for name, size in list_files(path) if name.endswith(".parquet"))
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
            (r.asDict() for r in map_in_arrow(narrow, _PartitionTotals(), _TOTALS).collect()),
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
        parts = map_in_arrow(narrow, assigner, _SHARD_PARTS).collect()
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


def list_files(directory: str) -> list[tuple[str, int]]:
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
        while chunk := stream.read(HASH_CHUNK):
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


def write_empty_shard(path: str) -> None:
    import pyarrow.parquet as pq

    filesystem, local = fs.arrow_filesystem(path)
    with filesystem.open_output_stream(local) as sink:
        pq.write_table(EXPORT.empty_table(), sink, compression="zstd")


def move_shards(shards_dir: str, target: str, count: int) -> list[str]:
    fs.make_dirs(target)
    paths = []
    for index in range(count):
        directory = fs.join(shards_dir, f"{SHARD_COLUMN}={index}")
        files = [name for name, _ in list_files(directory) if name.endswith(".parquet")]
        if len(files) != 1:
            raise CurateError(f"export: shard {index} was written as {len(files)} files in {directory}, expected 1")
        path = fs.join(target, shard_name(index, count))
        fs.rename(fs.join(directory, files[0]), path)
        paths.append(path)
    return paths
