"""Phase 2: LSH banding into candidate pairs, each scored by its signature estimate or its exact Jaccard."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from curate.runners.spark import map_in_arrow
from curate.stages.dedup.components import cut_lineage

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


# Up to this many documents near the threshold, their ids are broadcast to filter the texts without a shuffle:
# about 5 MB of ids through the driver, within Spark's own 10 MB auto-broadcast size; above it, a shuffle join.
BROADCAST_IDS = 100_000


def band_hashes(signatures: DataFrame, bands: int, rows: int) -> DataFrame:
    """(band, bhash, doc_id, is_new) for documents with at least one shingle.

    Band b covers signature values [b*rows, (b+1)*rows); Spark's xxhash64 of (band, values) names the bucket.
    A collision of two different bands only adds a candidate pair, which verification then rejects.
    """
    from pyspark.sql import functions as F

    entries = [
        F.struct(F.lit(b).alias("band"), F.xxhash64(F.lit(b), F.slice("minhash", b * rows + 1, rows)).alias("bhash"))
        for b in range(bands)
    ]
    return (
        signatures.where(F.col("n_shingles") > 0)
        .select("doc_id", "is_new", F.explode(F.array(*entries)).alias("e"))
        .select("e.band", "e.bhash", "doc_id", "is_new")
    )


def candidate_pairs(bands: DataFrame, max_bucket_size: int) -> DataFrame:
    """Distinct (a, b) with a < b sharing a bucket, at least one of them new."""
    from pyspark.sql import functions as F

    buckets = (
        bands.groupBy("band", "bhash")
        .agg(F.array_sort(F.collect_list(F.struct("doc_id", "is_new"))).alias("m"))
        .where((F.size("m") > 1) & F.exists("m", lambda x: x["is_new"]))
    )
    all_pairs = F.expr(
        "flatten(transform(m, (x, i) -> transform(slice(m, i + 2, size(m)),"
        " y -> named_struct('a', x.doc_id, 'b', y.doc_id, 'new', x.is_new OR y.is_new))))"
    )
    star = F.expr(
        "transform(slice(m, 2, size(m)), y -> named_struct('a', m[0].doc_id, 'b', y.doc_id, 'new', m[0].is_new OR y.is_new))"
    )
    pairs = buckets.select(F.explode(F.when(F.size("m") <= max_bucket_size, all_pairs).otherwise(star)).alias("p"))
    return pairs.where("p.new AND p.a != p.b").select("p.a", "p.b").distinct()


def estimated_jaccard(left: Column | str, right: Column | str) -> Column:
    """Fraction of equal signature values: datasketch's `MinHash.jaccard`, evaluated in the JVM."""
    from pyspark.sql import functions as F

    equal = F.zip_with(left, right, lambda p, q: (p == q).cast("int"))
    return (F.aggregate(equal, F.lit(0), lambda acc, e: acc + e) / F.size(left)).cast("float")


def verify_pairs(pairs: DataFrame, signatures: DataFrame, threshold: float | None) -> DataFrame:
    """(a, b, jaccard) with the signature estimate; pairs below `threshold` dropped (None keeps all)."""
    from pyspark.sql import functions as F

    sig = signatures.select("doc_id", "minhash")
    scored = (
        pairs.join(sig.withColumnRenamed("doc_id", "a").withColumnRenamed("minhash", "ma"), "a")
        .join(sig.withColumnRenamed("doc_id", "b").withColumnRenamed("minhash", "mb"), "b")
        .select("a", "b", estimated_jaccard("ma", "mb").alias("jaccard"))
    )
    return scored if threshold is None else scored.where(F.col("jaccard") >= F.lit(threshold))


_VERIFIED_PAIRS = pa.schema([("_l", pa.string()), ("_r", pa.string()), ("jaccard", pa.float32())])


class _ExactJaccardFunction:
    """The picklable body of `mapInArrow`: (left, right, jaccard, text_l, text_r) -> (left, right, jaccard).

    The estimate passes through where a text is missing (an earlier corpus keeps signatures, not texts).
    """

    def __init__(self, ngram: int) -> None:
        self.ngram = ngram

    def __call__(self, batches: Any) -> Any:
        import numpy as np

        from curate.steps.minhash import exact_jaccard

        for batch in batches:
            left, right = batch.column("text_l"), batch.column("text_r")
            exact = exact_jaccard(left, right, self.ngram)
            known = np.asarray(left.is_valid()) & np.asarray(right.is_valid())
            estimate = np.asarray(batch.column("jaccard").to_numpy(zero_copy_only=False), dtype=np.float32)
            values = np.where(known, exact, estimate).astype(np.float32)
            yield pa.RecordBatch.from_arrays(
                [batch.column("_l"), batch.column("_r"), pa.array(values, pa.float32())], names=["_l", "_r", "jaccard"]
            )


def with_exact_jaccard(
    pairs: DataFrame,
    texts: DataFrame,
    ngram: int,
    left: str = "a",
    right: str = "b",
    *,
    threshold: float = 0.0,
    margin: float = 1.0,
) -> DataFrame:
    """`pairs` (left, right, jaccard): the signature estimate replaced by the exact shingle-set Jaccard where
    it lies within `margin` of `threshold` (the pairs whose decision the estimate's error could flip)."""
    from pyspark.sql import functions as F

    # Both branches below read `pairs`: materialise it once instead of planning banding and joins twice.
    pairs = cut_lineage(pairs.select(left, right, "jaccard"))
    near_threshold = F.abs(F.col("jaccard") - F.lit(threshold)) < F.lit(margin)
    settled = pairs.where(~near_threshold)
    near = pairs.where(near_threshold)  # a filter over materialised pairs: cheaper to redo than to store
    ids = near.select(F.col(left).alias("doc_id")).union(near.select(F.col(right).alias("doc_id"))).distinct()
    if ids.count() <= BROADCAST_IDS:
        # Usually few documents sit near the threshold: filter the texts map-side against their ids instead
        # of shuffling every text of the run into the two joins below.
        ids = F.broadcast(ids)
    needed = texts.join(ids, "doc_id", "left_semi")
    text_l = needed.select(F.col("doc_id").alias("_l"), F.col("text").alias("text_l"))
    text_r = needed.select(F.col("doc_id").alias("_r"), F.col("text").alias("text_r"))
    pairs = near
    joined = (
        pairs.select(F.col(left).alias("_l"), F.col(right).alias("_r"), "jaccard")
        .join(text_l, "_l", "left")
        .join(text_r, "_r", "left")
        .select("_l", "_r", "jaccard", "text_l", "text_r")
    )
    out = map_in_arrow(joined, _ExactJaccardFunction(ngram), _VERIFIED_PAIRS)
    return out.select(F.col("_l").alias(left), F.col("_r").alias(right), "jaccard").unionByName(settled)
