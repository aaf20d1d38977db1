"""Decontamination stage: documents in, clean documents out, plus the audit trail of every removal.

    <run>/<name>/part-*.parquet        documents without benchmark n-grams (cut mode: with them cut out)
    <run>/<name>/_rejected/            dropped documents, reason `benchmark_contamination`,
                                       detail `benchmark:item_id` of the first hit
    <run>/<name>/_contamination/       schema.CONTAMINATION: one row per hit (doc_id, url, benchmark,
                                       item_id, field, ngram, offset, length, matched_tokens)
    <run>/<name>/_manifest.json        + extra.contamination: per benchmark, documents / hits / items hit,
                                       and the index (entries, memory, coverage per benchmark)

The index is built on the driver from the benchmark registry (or taken from `index_path`), kept next to
the run (`<run>/_decontam_index/`, or the local temp dir for a remote run) under a name derived from its
inputs, and shipped to executors with `SparkContext.addFile`; each Python worker loads it once. Its
content digest is part of the stage config, so a changed benchmark set re-runs the stage.

Counts come from the written datasets (one Spark aggregation each), never from accumulators.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.decontam.index import IndexConfig, NGramIndex
from curate.decontam.loaders import REGISTRY_PATH, load_specs, load_texts
from curate.decontam.normalize import NORMALIZATION_VERSION
from curate.decontam.step import HITS_COLUMN, MODES, DecontaminateStep, hit_rows
from curate.errors import ConfigError
from curate.io import fs
from curate.manifest import Manifest, canonical_json
from curate.schema import CONTAMINATION, spark_schema
from curate.stage import Inputs, RunContext, Stage, files_fingerprint
from curate.stage_rows import read_dataset_batches, stage_dataset, write_local_output, write_spark_output
from curate.stages.registry import CONTAMINATION_DIR
from curate.step import final_schema, run_steps

log = logging.getLogger(__name__)

INDEX_DIR = "_decontam_index"
DATA_ROOT_ENV = "CURATE_SHARED_DATA"


def resolve_data_root(data_root: str | None) -> Path:
    root = data_root or os.environ.get(DATA_ROOT_ENV)
    if not root:
        raise ConfigError(
            f"decontaminate.data_root is not set: give the directory the benchmark paths are relative to "
            f"(--data-root or ${DATA_ROOT_ENV})"
        )
    if not Path(root).is_dir():
        raise ConfigError(f"decontaminate.data_root {root} is not a directory")
    return Path(root)


def build_index_file(
    directory: str | Path,
    *,
    benchmarks: str | None = None,
    data_root: str | None = None,
    only: list[str] | None = None,
    config: IndexConfig | None = None,
    allow_empty: bool = False,
) -> Path:
    """Build the index of a benchmark registry into `directory` (reused if its inputs did not change).

    A benchmark file with no items is an error unless `allow_empty`: an index silently without it would let
    that benchmark's leaks through."""
    config = config or IndexConfig()
    registry = benchmarks or str(REGISTRY_PATH)
    specs = load_specs(registry, root=resolve_data_root(data_root))
    if only:
        missing = sorted(set(only) - {s.name for s in specs})
        if missing:
            raise ConfigError(f"decontaminate.only: unknown benchmark(s) {', '.join(missing)} in {registry}")
        specs = [s for s in specs if s.name in set(only)]
    key_inputs = [
        NORMALIZATION_VERSION,
        repr(config),
        [repr(s) for s in specs],
        files_fingerprint([s.path for s in specs]),
    ]
    key = hashlib.sha256(canonical_json(key_inputs).encode()).hexdigest()[:16]
    path = Path(directory) / f"index-{key}.npz"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    texts = load_texts(specs)
    present = {text.benchmark for text in texts}
    empty = [spec for spec in specs if spec.name not in present]
    if empty and not allow_empty:
        spec = empty[0]
        raise ConfigError(
            f"benchmark {spec.name}: {spec.path} holds no items; fix the file, leave the benchmark out (--only), "
            "or allow it explicitly (--allow-empty-benchmarks)"
        )
    index = NGramIndex.build(texts, config)
    tmp = path.with_suffix(".tmp")
    index.save(tmp)
    tmp.replace(path)
    log.info("decontamination index %s: %s entries, %.1f MB", path, f"{len(index.hashes):,}", index.nbytes / 1e6)
    return path


def _index_directory(ctx: RunContext) -> Path:
    if fs.is_local(ctx.run_dir):
        return Path(fs.local_path(fs.join(ctx.run_dir, INDEX_DIR)))
    return Path(tempfile.gettempdir()) / "curate-decontam-index"


def _index_summary(index: NGramIndex) -> dict[str, Any]:
    stats = index.meta["benchmarks"]
    return {
        "config": index.meta["config"],
        "entries": index.meta["entries"],
        "memory_bytes": index.nbytes,
        "digest": index.digest(),
        "benchmarks": {
            name: {k: v for k, v in s.items() if k in ("items", "items_covered", "texts", "short_texts", "too_short")}
            for name, s in stats.items()
        },
    }


@dataclass
class DecontamConfig:
    """The `decontaminate:` section of a recipe, and the options of `curate decontaminate`.

    The index comes from `index` (a prebuilt .npz), else it is built from `benchmarks` (a registry YAML;
    default the shared registry) resolved against `data_root` (default $CURATE_SHARED_DATA), keeping only
    the benchmarks named in `only` when given.
    """

    enabled: bool = True  # `curate run` only: whether the stage runs at all
    benchmarks: str | None = None
    data_root: str | None = None
    only: list[str] | None = None
    n: int = 10
    mode: str = "drop"
    index: str | None = None
    allow_empty_benchmarks: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"decontaminate.mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ConfigError(f"decontaminate.n must be an integer >= 1, got {self.n!r}")


def run_decontaminate(ctx: RunContext, inputs: Inputs, config: DecontamConfig) -> Manifest:
    """Decontaminate the documents of the finished stage `inputs.stages[0]`."""
    (source,) = inputs.stages
    index_path = config.index
    if index_path is None:
        index_path = str(
            build_index_file(
                _index_directory(ctx),
                benchmarks=config.benchmarks,
                data_root=config.data_root,
                only=config.only,
                config=IndexConfig(n=config.n),
                allow_empty=config.allow_empty_benchmarks,
            )
        )
    elif not Path(index_path).is_file():
        raise ConfigError(f"decontaminate: index {index_path} does not exist")
    index = NGramIndex.load(index_path)
    unindexed = [name for name, stats in index.meta["benchmarks"].items() if not stats.get("items_covered")]
    if unindexed and not config.allow_empty_benchmarks:
        raise ConfigError(
            f"benchmark {unindexed[0]}: 0 items indexed (every text is shorter than the n-gram); it would catch "
            "nothing: leave it out (--only) or allow it explicitly (--allow-empty-benchmarks)"
        )
    step = DecontaminateStep(index_path, mode=config.mode)
    with Stage(
        ctx,
        inputs,
        config={"steps": {step.name: step.config()}, "index": index.meta["config"], "benchmarks": index.benchmarks},
        steps=[step.name],
    ) as stage:
        if not stage.pending:
            return stage.result
        contamination_path = fs.join(stage.tmp_path, CONTAMINATION_DIR)
        if ctx.runner == "local":
            rows_in, counts, per_benchmark = _run_local(stage, step, source, contamination_path)
        else:
            rows_in, counts, per_benchmark = _run_spark(ctx, stage, step, source, index_path, contamination_path)
        extra = {
            "contamination": {
                "mode": config.mode,
                "documents": per_benchmark.pop("_documents", 0),
                "per_benchmark": per_benchmark,
                "dataset": CONTAMINATION_DIR,
            },
            "index": _index_summary(index),
        }
        stage.finish(rows_in=rows_in, rows_out=counts.rows_out, drops=counts.drops, extra=extra)
    return stage.result


def _run_local(
    stage: Stage, step: DecontaminateStep, source: str, contamination_path: str
) -> tuple[int, Any, dict[str, Any]]:
    dataset = stage_dataset(source)
    input_schema = dataset.schema
    rows_in = dataset.count_rows()
    out_schema = final_schema([step], input_schema)
    os.makedirs(fs.local_path(contamination_path), exist_ok=True)
    writer = pq.ParquetWriter(
        os.path.join(fs.local_path(contamination_path), "part-00000.parquet"), CONTAMINATION, compression="zstd"
    )
    tables: list[pa.Table] = []

    def split(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            rows = hit_rows(batch)
            if rows.num_rows:
                writer.write_batch(rows)
                tables.append(pa.Table.from_batches([rows]))
            yield batch.drop_columns([HITS_COLUMN])

    try:
        batches = run_steps([step], read_dataset_batches(source), input_schema)
        counts = write_local_output(stage, split(batches), out_schema.remove(out_schema.get_field_index(HITS_COLUMN)))
    finally:
        writer.close()
    hits = pa.concat_tables(tables) if tables else CONTAMINATION.empty_table()
    return rows_in, counts, _per_benchmark_local(hits)


def _per_benchmark_local(hits: pa.Table) -> dict[str, Any]:
    out: dict[str, Any] = {"_documents": len(pc.unique(hits["doc_id"])) if hits.num_rows else 0}
    if not hits.num_rows:
        return out
    grouped = hits.group_by("benchmark").aggregate(
        [([], "count_all"), ("doc_id", "count_distinct"), ("item_id", "count_distinct")]
    )
    for row in sorted(grouped.to_pylist(), key=lambda r: r["benchmark"]):
        out[row["benchmark"]] = {
            "documents": row["doc_id_count_distinct"],
            "hits": row["count_all"],
            "items": row["item_id_count_distinct"],
        }
    return out


def _run_spark(
    ctx: RunContext, stage: Stage, step: DecontaminateStep, source: str, index_path: str, contamination_path: str
) -> tuple[int, Any, dict[str, Any]]:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import to_arrow_schema

    from curate.runners.spark import map_steps

    spark = ctx.spark
    if not (spark.sparkContext.master or "").startswith("local"):
        # Executors on other machines read the index from their SparkFiles directory (DecontaminateStep).
        spark.sparkContext.addFile(index_path)
    documents = spark.read.parquet(fs.to_uri(source))
    rows_in = documents.count()
    # Spark stores timestamps as UTC instants; the session time zone only labels them (UTC in curate).
    input_schema = to_arrow_schema(documents.schema, timezone=spark.conf.get("spark.sql.session.timeZone") or "UTC")
    out = map_steps(documents, [step], input_schema)
    # The documents write and the hits write read the same rows: scan every document once.
    out = out.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counts = write_spark_output(stage, out.drop(HITS_COLUMN))
        contamination_types = {f.name: f.dataType for f in spark_schema(CONTAMINATION).fields}
        hits = (
            out.where(F.col(HITS_COLUMN).isNotNull())
            .select("doc_id", "url", F.explode(HITS_COLUMN).alias("hit"))
            .select("doc_id", "url", "hit.*")
        )
        hits = hits.select(*[F.col(c).cast(t).alias(c) for c, t in contamination_types.items()])
        # After write_spark_output: its overwrite of the staged directory would delete this dataset.
        hits.coalesce(1).write.mode("overwrite").option("compression", "zstd").parquet(fs.to_uri(contamination_path))
    finally:
        out.unpersist()
    written = spark.read.parquet(fs.to_uri(contamination_path))
    per_benchmark: dict[str, Any] = {"_documents": written.select("doc_id").distinct().count()}
    rows = written.groupBy("benchmark").agg(
        F.count("*").alias("hits"),
        F.countDistinct("doc_id").alias("documents"),
        F.countDistinct("item_id").alias("items"),
    )
    for row in sorted(rows.collect(), key=lambda r: r["benchmark"]):
        per_benchmark[row["benchmark"]] = {"documents": row["documents"], "hits": row["hits"], "items": row["items"]}
    return rows_in, counts, per_benchmark
