"""Phase 4 on the driver: the star passes of `assign_stars` over a graph small enough to hold in memory.

Each distributed pass is a dozen Spark jobs (components, the keep-rule window, two signature joins, the
verification, the residual graph): on 6,720 documents the two passes took 2.7-4.7 s of a 9-16 s stage, almost
all of it job overhead. The verified graph is mostly far smaller than its corpus, so up to `DRIVER_MAX_EDGES`
edges and `DRIVER_MAX_NODES` nodes the passes run here on Arrow and numpy: one job fetches the graph's nodes
(signature and keep attributes), and with `verify: exact` one more per pass measures the near-threshold pairs
through the same `with_exact_jaccard` as the distributed passes. The result is the same rows: the same
components (smallest id), the same keep order (Spark's: nulls last, NaN above every number, strings by their
UTF-8 bytes) and the same float32 estimates, compared with the threshold in double precision as Spark does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.stages.dedup.candidates import with_exact_jaccard
from curate.stages.dedup.components import smallest_id_labels
from curate.stages.dedup.config import DedupConfig

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from curate.stages.dedup.exact_on_driver import DriverShingleSets

# Each node brings its signature (128 int64: ~1 KB of Arrow, viewed as is by numpy): 250 MB at this many.
DRIVER_MAX_NODES = 250_000
EARLIER = "_earlier"
REMOVED = pa.schema([("doc_id", pa.string()), ("kept_doc_id", pa.string()), ("jaccard", pa.float32())])


def graph_nodes(edges: pa.Table) -> pa.Array:
    """The distinct doc_ids of the edges (a, b)."""
    return pc.unique(pa.concat_arrays([edges.column("a").combine_chunks(), edges.column("b").combine_chunks()]))


def node_table(
    node_ids: pa.Array,
    signatures: DataFrame,
    attributes: DataFrame,
    earlier: DataFrame | None,
    fetched: pa.Table | None = None,
) -> pa.Table:
    """(doc_id, minhash, the keep attributes, _earlier) of `node_ids`, in one job.

    `fetched` (`candidates_on_driver.fetch_nodes` of the same nodes: doc_id, is_new, minhash) already holds the
    signatures and which documents are earlier ones (not new): then only the attributes are fetched.
    """
    from pyspark.sql import functions as F

    spark = signatures.sparkSession
    nodes = F.broadcast(spark.createDataFrame(pa.table({"doc_id": node_ids}), schema="doc_id string"))
    if fetched is not None:
        found = attributes.join(nodes, "doc_id", "left_semi").toArrow()
        mine = fetched.filter(pc.is_in(fetched.column("doc_id"), value_set=node_ids))
        rows = pc.index_in(mine.column("doc_id"), value_set=found.column("doc_id"))
        columns = {"doc_id": mine.column("doc_id"), "minhash": mine.column("minhash")}
        columns |= {name: found.column(name).take(rows) for name in found.column_names if name != "doc_id"}
        return pa.table({**columns, EARLIER: pc.invert(mine.column("is_new"))})
    frame = signatures.select("doc_id", "minhash").join(nodes, "doc_id", "left_semi")
    frame = frame.join(attributes, "doc_id", "left")
    if earlier is None:
        frame = frame.withColumn(EARLIER, F.lit(False))
    else:
        marked = earlier.select("doc_id").join(nodes, "doc_id", "left_semi").distinct()
        frame = frame.join(marked.withColumn(EARLIER, F.lit(True)), "doc_id", "left").fillna(False, [EARLIER])
    return frame.toArrow()


def _sort_keys(table: pa.Table, keys: list[tuple[str, bool]]) -> tuple[pa.Table, list[tuple[str, str, str]]]:
    """Arrow sort keys in Spark's order for `keys` (column, descending), with helper columns added to `table`.

    Arrow puts NaN after every number either way; Spark ranks NaN above every number, so first when
    descending: a descending float key is preceded by an is-NaN key.
    """
    sort: list[tuple[str, str, str]] = [("cluster_id", "ascending", "at_end")]
    for name, descending in keys:
        if descending and pa.types.is_floating(table.schema.field(name).type):
            helper = f"_nan_{name}"
            table = table.append_column(helper, pc.fill_null(pc.is_nan(table.column(name)), False))
            sort.append((helper, "descending", "at_end"))
        sort.append((name, "descending" if descending else "ascending", "at_end"))
    return table, sort


def _kept_documents(members: pa.Table, keys: list[tuple[str, bool]]) -> pa.Table:
    """(doc_id, cluster_id, kept_doc_id) for every new member: the keep rule's first new document of its
    cluster, or the smallest earlier doc_id where the cluster holds earlier documents (never edited)."""
    is_earlier = members.column(EARLIER)
    new = members.filter(pc.invert(is_earlier))
    table, sort = _sort_keys(new, keys)
    ordered = new.take(pc.sort_indices(table, sort_keys=sort))
    clusters = ordered.column("cluster_id").combine_chunks()
    first = np.ones(len(clusters), dtype=bool)
    if len(clusters) > 1:
        first[1:] = np.asarray(pc.not_equal(clusters[1:], clusters[:-1]))
    kept = pa.table(
        {"cluster_id": clusters.filter(pa.array(first)), "kept": ordered.column("doc_id").filter(pa.array(first))}
    )
    earliest = (
        members.filter(is_earlier)
        .group_by("cluster_id")
        .aggregate([("doc_id", "min")])
        .rename_columns({"doc_id_min": "earliest"})
    )
    kept = kept.join(earliest, "cluster_id", join_type="left outer")
    kept = kept.append_column("kept_doc_id", pc.coalesce(kept.column("earliest"), kept.column("kept")))
    return ordered.select(["doc_id", "cluster_id"]).join(kept.select(["cluster_id", "kept_doc_id"]), "cluster_id")


def assign_stars_on_driver(
    edges: pa.Table,
    signatures: DataFrame,
    attributes: DataFrame,
    config: DedupConfig,
    earlier: DataFrame | None = None,
    texts: DataFrame | None = None,
    driver_sets: DriverShingleSets | None = None,
    fetched: pa.Table | None = None,
) -> tuple[DataFrame, dict[str, int]]:
    """`assign_stars` for the collected edges (a, b): the same (doc_id, cluster_id, kept_doc_id, jaccard) rows.

    `fetched`: see `node_table`.

    With `driver_sets` (the shingle sets of every text of `texts` the edges' documents have), the exact
    Jaccard is measured here; otherwise through `with_exact_jaccard` on Spark.
    """
    threshold = config.kept_threshold
    left, right = edges.column("a").combine_chunks(), edges.column("b").combine_chunks()
    nodes = node_table(graph_nodes(edges), signatures, attributes, earlier, fetched)
    nodes = nodes.take(pc.sort_indices(nodes, sort_keys=[("doc_id", "ascending")]))
    node_ids = nodes.column("doc_id").combine_chunks()
    minhash = nodes.column("minhash").combine_chunks()
    values = np.asarray(minhash.flatten()).reshape(len(nodes), -1) if len(nodes) else np.empty((0, 0), np.int64)
    keys = config.keep_keys([c for c in nodes.column_names if c not in ("minhash", EARLIER)])
    spark = signatures.sparkSession
    removed: list[pa.Table] = []
    stats = {"rounds": 0, "passes": 0, "residual": 0}
    while True:
        stats["passes"] += 1
        labels = smallest_id_labels(left, right)
        rows = np.asarray(pc.index_in(labels.column("doc_id"), value_set=node_ids))
        members = (
            nodes.take(pa.array(rows))
            .drop_columns(["minhash"])
            .append_column("cluster_id", labels.column("cluster_id"))
        )
        ranked = _kept_documents(members, keys)
        moved = ranked.filter(pc.not_equal(ranked.column("doc_id"), ranked.column("kept_doc_id")))
        member_rows = np.asarray(pc.index_in(moved.column("doc_id"), value_set=node_ids))
        kept_rows = np.asarray(pc.index_in(moved.column("kept_doc_id"), value_set=node_ids))
        equal = (values[member_rows] == values[kept_rows]).sum(axis=1) if len(moved) else np.zeros(0)
        estimate = (equal / values.shape[1]).astype(np.float32) if len(moved) else np.zeros(0, np.float32)
        scored = pa.table(
            {"doc_id": moved.column("doc_id"), "kept_doc_id": moved.column("kept_doc_id"), "jaccard": estimate},
            schema=REMOVED,
        )
        if config.verify == "exact" and texts is not None and len(scored):
            if driver_sets is not None:
                scored = driver_sets.measured(
                    scored, "doc_id", "kept_doc_id", threshold=threshold, margin=config.exact_margin
                )
            else:
                scored = _verified(spark, scored, texts, config)
        accepted = scored.filter(pa.array(np.asarray(scored.column("jaccard"), dtype=np.float64) >= threshold))
        removed.append(accepted)
        settled = pa.concat_arrays(
            [accepted.column("doc_id").combine_chunks(), ranked.column("kept_doc_id").combine_chunks()]
        )
        residual = pc.filter(labels.column("doc_id"), pc.invert(pc.is_in(labels.column("doc_id"), value_set=settled)))
        if stats["passes"] >= config.max_passes:
            stats["residual"] = len(residual)
            break
        inside = pc.and_(pc.is_in(left, value_set=residual), pc.is_in(right, value_set=residual))
        left, right = left.filter(inside), right.filter(inside)
        if not len(left):
            break
    stars = with_cluster_ids(pa.concat_tables(removed))
    frame = spark.createDataFrame(stars, schema="doc_id string, cluster_id string, kept_doc_id string, jaccard float")
    return frame, stats


def with_cluster_ids(removed: pa.Table) -> pa.Table:
    """(doc_id, cluster_id, kept_doc_id, jaccard): `keep.with_cluster_ids` on the driver."""
    smallest = removed.group_by("kept_doc_id").aggregate([("doc_id", "min")])
    at = pc.index_in(removed.column("kept_doc_id"), value_set=smallest.column("kept_doc_id"))
    member = smallest.column("doc_id_min").take(at)
    kept = removed.column("kept_doc_id")
    cluster = pc.if_else(pc.less(kept, member), kept, member)
    return pa.table(
        [removed.column("doc_id"), cluster, kept, removed.column("jaccard")],
        names=["doc_id", "cluster_id", "kept_doc_id", "jaccard"],
    )


def _verified(spark: SparkSession, scored: pa.Table, texts: DataFrame, config: DedupConfig) -> pa.Table:
    """`scored` with the exact Jaccard where the estimate is near the threshold (the distributed passes' own
    `with_exact_jaccard`, on Spark: the texts stay on the executors)."""
    pairs = spark.createDataFrame(scored, schema="doc_id string, kept_doc_id string, jaccard float")
    measured = with_exact_jaccard(
        pairs,
        texts,
        config.minhash.ngram,
        "doc_id",
        "kept_doc_id",
        threshold=config.kept_threshold,
        margin=config.exact_margin,
    ).toArrow()
    # One row per removed candidate (each member has one kept document): back into `scored`'s order.
    order = np.asarray(pc.index_in(scored.column("doc_id"), value_set=measured.column("doc_id")))
    return scored.set_column(
        2, REMOVED.field("jaccard"), measured.column("jaccard").take(pa.array(order)).cast(pa.float32())
    )
