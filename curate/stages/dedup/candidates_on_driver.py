"""Phase 2 on the driver: LSH banding and the signature estimate for a corpus small enough to hold in memory.

On Spark, banding, the bucket grouping, the pair expansion and the two signature joins of `verify_pairs` are
a dozen jobs; on 6,720 documents they cost about 2.5 s of a 12 s cold stage, almost all of it job overhead.
Up to `DRIVER_MAX_DOCUMENTS` documents, one job fetches (doc_id, is_new, minhash) and numpy does the rest. The
result is the same rows as `verify_pairs(candidate_pairs(band_hashes(...)))`:

- a bucket is the band's values themselves (Spark names it by their xxhash64; two slices sharing a hash would
  only add a pair there, which the threshold then rejects);
- a bucket's members are in Spark's `array_sort` order of (doc_id, is_new): doc_ids by their UTF-8 bytes;
- a bucket over `max_bucket_size` gives the star from its first member, a smaller one all its pairs, and only
  buckets and pairs with a new document count;
- the estimate is the fraction of equal values, a double rounded to float32, as Spark casts it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# Each document brings its signature (128 int64: ~1 KB), through the driver JVM and then in numpy: ~100 MB
# at this many, within a 1 GB driver. The whole corpus comes here, not only a graph's nodes, so the bound is
# lower than `keep_on_driver.DRIVER_MAX_NODES`.
DRIVER_MAX_DOCUMENTS = 100_000

SCORED = pa.schema([("a", pa.string()), ("b", pa.string()), ("jaccard", pa.float32())])


def fetch_nodes(nodes: DataFrame, max_nodes: int = DRIVER_MAX_DOCUMENTS, rows: int | None = None) -> pa.Table | None:
    """(doc_id, is_new, minhash, n_shingles) of the documents with shingles, or None over `max_nodes`.

    `rows` bounds `nodes`' row count where it is known (from manifests): within `max_nodes` the fetch needs no
    limit, which Spark plans as a shuffle into one task; above it nothing is fetched.
    """
    from pyspark.sql import functions as F

    if rows is not None and rows > max_nodes:
        return None
    with_shingles = nodes.where(F.col("n_shingles") > 0).select("doc_id", "is_new", "minhash", "n_shingles")
    if rows is not None:
        return with_shingles.toArrow()
    table = with_shingles.limit(max_nodes + 1).toArrow()
    return None if table.num_rows > max_nodes else table


def scored_frame(spark: SparkSession, scored: pa.Table) -> DataFrame:
    """Scored pairs from the driver as a DataFrame."""
    from curate.schema import spark_schema

    return spark.createDataFrame(scored, schema=spark_schema(SCORED))


def scored_candidates(nodes: pa.Table, bands: int, rows: int, max_bucket_size: int) -> pa.Table:
    """(a, b, jaccard) for every candidate pair of `nodes` (see the module docstring), a before b."""
    if nodes.num_rows < 2:
        return SCORED.empty_table()
    # Spark's member order: by doc_id (bytes), then is_new (false first).
    order = pc.sort_indices(nodes, sort_keys=[("doc_id", "ascending"), ("is_new", "ascending")])
    nodes = nodes.take(order)
    doc_ids = nodes.column("doc_id").combine_chunks()
    is_new = np.asarray(nodes.column("is_new").combine_chunks().to_numpy(zero_copy_only=False), dtype=bool)
    lists = nodes.column("minhash").combine_chunks()
    width = bands * rows
    lengths = np.asarray(pc.list_value_length(lists).to_numpy(zero_copy_only=False))
    if np.any(lengths != lengths[0]) or lengths[0] < width:
        raise ValueError("signatures of different lengths, or shorter than bands x rows")
    values = np.asarray(lists.flatten().to_numpy(zero_copy_only=False), dtype=np.int64).reshape(len(lengths), -1)
    # Equal doc_ids (the same document twice) are one node: a pair of them is no pair.
    same_as_previous = np.zeros(len(doc_ids), dtype=bool)
    if len(doc_ids) > 1:
        same_as_previous[1:] = np.asarray(pc.equal(doc_ids[1:], doc_ids[:-1]).to_numpy(zero_copy_only=False))
    identity = np.cumsum(~same_as_previous) - 1

    left: list[np.ndarray] = []
    right: list[np.ndarray] = []
    for band in range(bands):
        block = np.ascontiguousarray(values[:, band * rows : (band + 1) * rows])
        _, bucket = np.unique(block.view(np.dtype((np.void, block.dtype.itemsize * rows))).ravel(), return_inverse=True)
        members = np.argsort(bucket, kind="stable")  # nodes are in member order already: stable keeps it
        sorted_buckets = bucket[members]
        starts = np.flatnonzero(np.concatenate(([True], sorted_buckets[1:] != sorted_buckets[:-1])))
        sizes = np.diff(np.append(starts, len(members)))
        for size in np.unique(sizes[sizes > 1]):
            groups = members[starts[sizes == size][:, None] + np.arange(size)]  # (buckets, size), member order
            groups = groups[is_new[groups].any(axis=1)]
            if not len(groups):
                continue
            if size <= max_bucket_size:
                i, j = np.triu_indices(size, 1)
            else:
                i, j = np.zeros(size - 1, dtype=np.int64), np.arange(1, size)
            left.append(groups[:, i].ravel())
            right.append(groups[:, j].ravel())
    if not left:
        return SCORED.empty_table()
    a, b = np.concatenate(left), np.concatenate(right)
    wanted = (is_new[a] | is_new[b]) & (identity[a] != identity[b])
    a, b = a[wanted], b[wanted]
    # Distinct by doc_id: the first node of each identity stands for it.
    first_of = np.flatnonzero(~same_as_previous)[identity]
    pairs = np.unique(np.stack([first_of[a], first_of[b]], axis=1), axis=0)
    a, b = pairs[:, 0], pairs[:, 1]
    equal = (values[a] == values[b]).sum(axis=1)
    jaccard = (equal / values.shape[1]).astype(np.float32)
    return pa.table(
        [doc_ids.take(pa.array(a)), doc_ids.take(pa.array(b)), pa.array(jaccard, pa.float32())], schema=SCORED
    )
