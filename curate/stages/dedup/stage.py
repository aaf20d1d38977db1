"""The near-dedup stage: the four phases on DataFrames (`deduplicate`), and `run_near_dedup` writing them into a run."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.errors import ConfigError
from curate.io import fs
from curate.manifest import read_manifest
from curate.schema import DUPLICATES, SIGNATURES
from curate.stages.dedup import write_on_driver
from curate.stages.dedup.candidates import band_hashes, candidate_pairs, verify_pairs, with_exact_jaccard
from curate.stages.dedup.candidates_on_driver import DRIVER_MAX_DOCUMENTS, fetch_nodes, scored_candidates, scored_frame
from curate.stages.dedup.components import DRIVER_MAX_EDGES, cut_lineage
from curate.stages.dedup.config import DedupConfig
from curate.stages.dedup.exact_on_driver import DRIVER_MAX_SHINGLE_BYTES, DriverShingleSets
from curate.stages.dedup.keep import assign_stars, conform_frame, keep_attributes, mark_duplicates
from curate.stages.dedup.signatures import compute_signatures, read_previous_signatures
from curate.stages.registry import DUPLICATES_DIR, SIGNATURES_DIR
from curate.steps.minhash import MinHashStep

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from curate.manifest import Manifest
    from curate.stage import Inputs, RunContext


NEAR_DEDUP_STEP = "minhash_lsh_verified_stars_v2"


@dataclass
class DedupResult:
    """`documents` is the input with drop columns; `duplicates` has the DUPLICATES schema."""

    documents: DataFrame
    duplicates: DataFrame
    signatures: DataFrame
    stats: dict[str, int]


@contextmanager
def _timed(timings: dict[str, float] | None, name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        if timings is not None:
            timings[name] = round(timings.get(name, 0.0) + time.perf_counter() - start, 3)


@dataclass
class _Candidates:
    """Scored candidate pairs; where the driver scored them, also their counts, edges, nodes and shingle sets."""

    scored: DataFrame  # (a, b, jaccard)
    counts: tuple[int, int] | None = None  # (pairs, edges)
    edges: pa.Table | None = None  # (a, b) at or above the edge threshold
    fetched: pa.Table | None = None  # `fetch_nodes`
    driver_sets: DriverShingleSets | None = None


def _scored_candidates(
    nodes: DataFrame,
    signatures: DataFrame,
    exact_texts: DataFrame | None,
    config: DedupConfig,
    *,
    max_documents: int,
    max_shingle_bytes: int,
    node_rows: int | None,
) -> _Candidates:
    """Banding and scoring on the driver within its bounds, else on Spark; with `exact_texts`, exact Jaccard
    near the threshold (on the driver where the shingle sets fit there)."""
    params = config.minhash
    bands, rows = params.bands_rows
    spark = nodes.sparkSession
    fetched = fetch_nodes(nodes, max_documents, node_rows)
    on_driver = None if fetched is None else scored_candidates(fetched, bands, rows, config.max_bucket_size)
    if fetched is not None and on_driver is not None:
        driver_sets = None
        if exact_texts is not None:
            endpoints = pc.unique(pa.concat_arrays([on_driver.column(c).combine_chunks() for c in ("a", "b")]))
            n_shingles = pc.sum(fetched.filter(pc.is_in(fetched.column("doc_id"), endpoints)).column("n_shingles"))
            driver_sets = DriverShingleSets.fetch(
                exact_texts, endpoints, params.ngram, n_shingles.as_py() or 0, max_shingle_bytes, signatures
            )
        if driver_sets is not None or exact_texts is None:
            if driver_sets is not None:
                on_driver = driver_sets.measured(
                    on_driver, "a", "b", threshold=params.threshold, margin=config.exact_margin
                )
            is_edge = np.asarray(on_driver.column("jaccard"), dtype=np.float64) >= config.edge_threshold
            return _Candidates(
                scored_frame(spark, on_driver),
                counts=(len(is_edge), int(np.count_nonzero(is_edge))),
                edges=on_driver.filter(pa.array(is_edge)).select(["a", "b"]),
                fetched=fetched,
                driver_sets=driver_sets,
            )
    if on_driver is not None:
        scored = scored_frame(spark, on_driver)
    else:
        scored = verify_pairs(candidate_pairs(band_hashes(nodes, bands, rows), config.max_bucket_size), nodes, None)
    if exact_texts is not None:
        scored = with_exact_jaccard(
            scored, exact_texts, params.ngram, threshold=params.threshold, margin=config.exact_margin
        )
    return _Candidates(cut_lineage(scored), fetched=fetched)


def find_duplicates(
    signatures: DataFrame,
    attributes: DataFrame,
    config: DedupConfig,
    previous: DataFrame | None = None,
    timings: dict[str, float] | None = None,
    texts: DataFrame | None = None,
    *,
    driver_max_edges: int = DRIVER_MAX_EDGES,
    driver_max_documents: int = DRIVER_MAX_DOCUMENTS,
    driver_max_shingle_bytes: int = DRIVER_MAX_SHINGLE_BYTES,
    node_rows: int | None = None,
) -> tuple[DataFrame, dict[str, int]]:
    """DUPLICATES rows for this run's documents, and counts of the intermediate sets.

    `texts` (doc_id, text) of this run's documents is what `verify: exact` measures; without it the
    signature estimate is used.

    `signatures` should be materialised (read from Parquet or persisted): it is read several times.
    `timings` (if given) receives the seconds spent materialising candidates and components. `node_rows`, where
    known, bounds the rows of `signatures` and `previous` together (see `fetch_nodes`). Up to
    `driver_max_documents` documents with shingles are banded and scored on the driver (`candidates_on_driver`),
    their candidates' shingle sets, up to `driver_max_shingle_bytes`, are measured there (`exact_on_driver`),
    and graphs of up to `driver_max_edges` edges are clustered there (see `assign_stars`).
    """
    from pyspark.sql import functions as F

    params = config.minhash
    bands, rows = params.bands_rows
    current = signatures.select("doc_id", "minhash", "n_shingles", F.lit(True).alias("is_new"))
    reseen = None
    if previous is not None:
        earlier = previous.select("doc_id", "minhash", "n_shingles", F.lit(False).alias("is_new"))
        # A document already in the earlier corpus (same doc_id) is the same record fetched again.
        reseen = current.join(earlier.select("doc_id"), "doc_id", "left_semi")
        current = current.join(earlier.select("doc_id"), "doc_id", "left_anti")
        nodes_all = current.unionByName(earlier)
    else:
        nodes_all = current

    threshold = config.edge_threshold
    # Candidates are scored once and materialised (on the driver, or checkpointed on Spark); the threshold is a
    # filter on the stored scores.
    with _timed(timings, "candidates"):
        found = _scored_candidates(
            nodes_all,
            signatures,
            texts if config.verify == "exact" else None,
            config,
            max_documents=driver_max_documents,
            max_shingle_bytes=driver_max_shingle_bytes,
            node_rows=node_rows,
        )
    scored = found.scored
    edges = scored.where(F.col("jaccard") >= F.lit(threshold))
    with _timed(timings, "components"):
        earlier_ids = None if previous is None else nodes_all.where(~F.col("is_new")).select("doc_id")
        removed, star_stats = assign_stars(
            edges,
            nodes_all,
            attributes,
            config,
            earlier_ids,
            texts,
            driver_max_edges=driver_max_edges,
            driver_sets=found.driver_sets,
            fetched=found.fetched,
            edge_table=found.edges,
        )
    duplicates = removed
    if reseen is not None:
        duplicates = duplicates.unionByName(
            reseen.select(
                "doc_id",
                F.col("doc_id").alias("cluster_id"),
                F.col("doc_id").alias("kept_doc_id"),
                F.lit(1.0).cast("float").alias("jaccard"),
            )
        )
    counts = found.counts
    if counts is None:
        counts = scored.agg(F.count("*"), F.count(F.when(F.col("jaccard") >= F.lit(threshold), 1))).collect()[0]
    stats = {"bands": bands, "rows": rows, "candidate_pairs": counts[0], "edges": counts[1], **star_stats}
    return conform_frame(duplicates, DUPLICATES), stats


def deduplicate(
    documents: DataFrame, config: DedupConfig | None = None, previous: DataFrame | None = None
) -> DedupResult:
    """The whole transform on DataFrames (the stage adds Parquet output, scratch and the manifest).

    Signatures are persisted here so MinHash runs once per document; call `result.signatures.unpersist()`
    when done.
    """
    from pyspark import StorageLevel

    config = config or DedupConfig()
    signatures = compute_signatures(documents, config.minhash).persist(StorageLevel.MEMORY_AND_DISK)
    texts = documents.select("doc_id", "text")
    duplicates, stats = find_duplicates(signatures, keep_attributes(documents, config), config, previous, texts=texts)
    return DedupResult(mark_duplicates(documents, duplicates), duplicates, signatures, stats)


def run_near_dedup(ctx: RunContext, inputs: Inputs, config: DedupConfig) -> Manifest:
    """The stage's contract (`run(ctx, inputs, config)`): `near_dedup_stage` at the driver bounds."""
    return near_dedup_stage(ctx, inputs, config)


def near_dedup_stage(
    ctx: RunContext, inputs: Inputs, config: DedupConfig, *, driver_max_documents: int = DRIVER_MAX_DOCUMENTS
) -> Manifest:
    """Near-dedup the documents of `inputs.stages[0]`; `inputs.stages[1:]` are near-dedup stages of earlier
    crawls, whose stored signatures join the banding and whose documents are never removed.

    Besides the kept documents and `_rejected/`, the stage holds `_duplicates/` (DUPLICATES: every removal
    with its cluster, kept document and Jaccard estimate) and `_signatures/` (SIGNATURES of the kept
    documents: the index a later crawl is deduplicated against). Always runs on Spark (a local[*] session
    under the local runner): clustering is a distributed job. Up to `driver_max_documents` documents, the
    phases with a driver path take it, and with the input and the run on local disk the driver writes the
    outputs (`write_on_driver`); 0 keeps every phase on Spark.
    """
    from pyspark.sql import functions as F

    from curate.stage import Stage
    from curate.stage_rows import count_rows, write_spark_output

    source, *previous = inputs.stages
    for stage_dir in previous:
        if read_manifest(stage_dir) is None:
            raise ConfigError(f"dedup.previous: {stage_dir} is not a finished near-dedup stage (no _manifest.json)")
    step = MinHashStep(config.minhash)
    with Stage(
        ctx,
        inputs,
        config={"dedup": config.to_dict(), "previous": previous, "steps": {step.name: step.config()}},
        steps=[step.name, NEAR_DEDUP_STEP],
    ) as stage:
        if not stage.pending:
            return stage.result
        spark = ctx.spark
        timings: dict[str, float] = {}
        documents = spark.read.parquet(fs.to_uri(source))
        rows_in = count_rows(ctx, source)

        # Scratch lives beside the staged output: the kept-documents write replaces the whole staged directory.
        work = stage.path + ".work"
        fs.remove_tree(work)
        signatures_path = fs.join(work, "signatures")
        # Documents of this run and of the earlier crawls: the bound of the driver's paths.
        node_rows = rows_in + sum(count_rows(ctx, stage_dir) for stage_dir in previous)
        # A corpus the driver verifies keeps its shingle sets beside the signatures: no second shingling.
        with_sets = config.verify == "exact" and node_rows <= driver_max_documents
        with _timed(timings, "signatures"):
            compute_signatures(documents, config.minhash, with_shingle_sets=with_sets).write.mode("overwrite").parquet(
                fs.to_uri(signatures_path)
            )
        signatures = spark.read.parquet(fs.to_uri(signatures_path))
        prior = read_previous_signatures(spark, previous, config.minhash)
        texts = documents.select("doc_id", "text")
        duplicates, stats = find_duplicates(
            signatures,
            keep_attributes(documents, config),
            config,
            prior,
            timings,
            texts=texts,
            driver_max_edges=DRIVER_MAX_EDGES if driver_max_documents else 0,
            driver_max_documents=driver_max_documents,
            node_rows=node_rows,
        )
        work_duplicates = fs.join(work, "duplicates")
        duplicates_path = fs.join(stage.tmp_path, DUPLICATES_DIR)
        signatures_out = fs.join(stage.tmp_path, SIGNATURES_DIR)
        if write_on_driver.writes_on_driver(source, stage, rows_in, driver_max_documents):
            with _timed(timings, "keep_rule"):
                removals = write_on_driver.removals_table(duplicates)
                write_on_driver.write_duplicates(removals, work_duplicates)
            with _timed(timings, "write_documents"):
                counts = write_on_driver.write_documents(stage, source, removals)
            fs.rename(work_duplicates, duplicates_path)
            with _timed(timings, "write_index"):
                write_on_driver.write_kept_signatures(signatures_path, removals, signatures_out)
                clusters = pc.count_distinct(removals.column("cluster_id")).as_py()
        else:
            with _timed(timings, "keep_rule"):
                duplicates.sortWithinPartitions("cluster_id", "doc_id").write.mode("overwrite").parquet(
                    fs.to_uri(work_duplicates)
                )
            duplicates = spark.read.parquet(fs.to_uri(work_duplicates))
            with _timed(timings, "write_documents"):
                counts = write_spark_output(stage, mark_duplicates(documents, duplicates))
            fs.rename(work_duplicates, duplicates_path)
            duplicates = spark.read.parquet(fs.to_uri(duplicates_path))
            with _timed(timings, "write_index"):
                kept_signatures = signatures.select(*SIGNATURES.names).join(
                    duplicates.select("doc_id"), "doc_id", "left_anti"
                )
                kept_signatures.sortWithinPartitions("doc_id").write.mode("overwrite").parquet(
                    fs.to_uri(signatures_out)
                )
                first = duplicates.select(F.countDistinct("cluster_id")).first()
                clusters = int(first[0]) if first else 0
        fs.remove_tree(work)
        extra = {
            **stats,
            "clusters": clusters,
            "signature_config": config.minhash.signature_config(),
            "previous": previous,
            "seconds": timings,
        }
        stage.finish(rows_in=rows_in, rows_out=counts.rows_out, drops=counts.drops, extra=extra)
    return stage.result
