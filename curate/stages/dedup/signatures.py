"""Phase 1: MinHash signatures of every document (the expensive part, written once), and those of earlier crawls."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from curate.errors import ConfigError
from curate.io import fs
from curate.manifest import read_manifest
from curate.runners.spark import map_in_arrow
from curate.schema import SIGNATURES, spark_schema
from curate.stages.registry import SIGNATURES_DIR
from curate.steps.minhash import MinHashParams, MinHashStep

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


class _SignaturesFunction:
    """The picklable body of `mapInArrow` that turns (doc_id, text) batches into SIGNATURES batches."""

    def __init__(self, params: MinHashParams, with_shingle_sets: bool) -> None:
        self.step = MinHashStep(params, signatures_only=True, with_shingle_sets=with_shingle_sets)

    def __call__(self, batches: Any) -> Any:
        from curate.step import conform

        schema = self.step.output_schema(SIGNATURES)
        for batch in self.step.apply(batches):
            yield conform(batch, schema)


def compute_signatures(documents: DataFrame, params: MinHashParams, *, with_shingle_sets: bool = False) -> DataFrame:
    """SIGNATURES rows (doc_id, minhash, n_shingles) for every document, and with `with_shingle_sets` each
    one's `shingle_set` (see `MinHashStep`)."""
    texts = documents.select("doc_id", "text")
    cores = documents.sparkSession.sparkContext.defaultParallelism
    if _parts_with_rows(documents, cores) < cores:
        # A small input is one Parquet split, i.e. one task on one core; MinHash is the CPU-heavy part. By hash
        # of doc_id: a round-robin repartition first sorts every row (texts included) to be deterministic.
        texts = texts.repartition(cores, "doc_id")
    function = _SignaturesFunction(params, with_shingle_sets)
    return map_in_arrow(texts, function, function.step.output_schema(SIGNATURES))


def _parts_with_rows(documents: DataFrame, enough: int) -> int:
    """How many tasks a scan of `documents` gives rows to, at least `enough` where that is clear.

    Spark splits a Parquet file by bytes, but a split holds rows only where a row group starts: a file of one
    row group read as two partitions leaves one task all the rows and the other none. So when the input has
    fewer files than `enough`, their row groups are counted (from the footers) instead of the partitions.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    partitions = int(documents.rdd.getNumPartitions())
    files = documents.inputFiles()  # empty where the frame is not a file scan
    if not files or len(files) >= enough:
        return len(files) or partitions
    row_groups = 0
    try:
        for path in files:
            filesystem, inner = fs.arrow_filesystem(path)
            with filesystem.open_input_file(inner) as handle:
                row_groups += pq.ParquetFile(handle).metadata.num_row_groups
    except (OSError, pa.ArrowException):  # a store only Hadoop reads: Spark's partitions are what there is
        return partitions
    return min(row_groups, partitions)


def read_previous_signatures(spark: Any, previous: list[str], params: MinHashParams) -> DataFrame | None:
    """The stored signatures of earlier dedup stages, checked to be comparable with `params`."""
    frames = []
    for stage_dir in previous:
        manifest = read_manifest(stage_dir)
        if manifest is None:
            raise ConfigError(f"dedup.previous: {stage_dir} is not a finished near-dedup stage (no _manifest.json)")
        stored = manifest.extra.get("signature_config")
        if stored != params.signature_config():
            raise ConfigError(
                f"dedup.previous: {stage_dir} has signatures made with {stored}, this run uses "
                f"{params.signature_config()}: signatures must share num_perm, ngram and seed"
            )
        frames.append(
            spark.read.schema(spark_schema(SIGNATURES)).parquet(fs.to_uri(fs.join(stage_dir, SIGNATURES_DIR)))
        )
    if not frames:
        return None
    combined = frames[0]
    for frame in frames[1:]:
        combined = combined.unionByName(frame)
    # The same record kept by two earlier stages (one crawl deduplicated twice) must stay one graph node.
    return combined.dropDuplicates(["doc_id"]) if len(frames) > 1 else combined
