"""Phase 3: connected components of the verified pairs (large-star / small-star rounds, or on the driver).

A near-dedup graph is mostly far smaller than its corpus (the verified pairs of 6,720 documents are a few
thousand edges), and each distributed round is several shuffles and jobs: 4.5 s of a 10 s dedup stage went
to them. A graph of at most `DRIVER_MAX_EDGES` edges is therefore collected and labelled on the driver
(vectorised min-label propagation with pointer jumping, the same labels: each component's smallest id);
larger graphs take the distributed rounds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.errors import CurateError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

# ~100 MB of Arrow on the driver at 40-byte ids; labelling takes about a second per million edges.
DRIVER_MAX_EDGES = 2_000_000


def cut_lineage(df: DataFrame, *, eager: bool = True) -> DataFrame:
    # A reliable checkpoint when the session has a checkpoint directory, else executor-local storage:
    # either way each round plans from materialised edges instead of the whole history of rounds.
    # Not eager: the next action on the result materialises it, saving a job (each costs ~0.2 s).
    if df.sparkSession.sparkContext.getCheckpointDir():
        return df.checkpoint(eager=eager)
    return df.localCheckpoint(eager=eager)


def _large_star(edges: DataFrame) -> DataFrame:
    """Link every neighbour larger than a node to the smallest id of the node's neighbourhood."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    both = edges.select(F.col("src").alias("u"), F.col("dst").alias("v")).union(
        edges.select(F.col("dst").alias("u"), F.col("src").alias("v"))
    )
    # A window rather than groupBy + join: one exchange by node instead of three.
    smallest = F.least(F.min("v").over(Window.partitionBy("u")), F.col("u"))
    return (
        both.withColumn("m", smallest)
        .where(F.col("v") > F.col("u"))
        .select(F.col("v").alias("src"), F.col("m").alias("dst"))
    )  # repeated edges are harmless to the small star, which ends on a distinct: one shuffle fewer


def _small_star(edges: DataFrame) -> DataFrame:
    """Link a node and its smaller neighbours to the smallest of them (edges point to the smaller id)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    with_min = edges.withColumn("m", F.min("dst").over(Window.partitionBy("src")))
    return (
        with_min.select(F.explode(F.array("src", "dst")).alias("src"), F.col("m").alias("dst"))
        .where(F.col("src") != F.col("dst"))
        .distinct()
    )


def _is_star_forest(edges: DataFrame) -> bool:
    """Converged: every node has at most one edge to a smaller id, and that id has none (one aggregation)."""
    from pyspark.sql import functions as F

    roles = edges.select(F.col("src").alias("node"), F.lit(1).alias("as_src"), F.lit(0).alias("as_dst")).union(
        edges.select(F.col("dst").alias("node"), F.lit(0).alias("as_src"), F.lit(1).alias("as_dst"))
    )
    per_node = roles.groupBy("node").agg(F.sum("as_src").alias("s"), F.max("as_dst").alias("d"))
    return per_node.where((F.col("s") > 1) | ((F.col("s") > 0) & (F.col("d") > 0))).count() == 0


def connected_components(
    pairs: DataFrame, max_rounds: int = 40, *, oriented: bool = False, driver_max_edges: int = DRIVER_MAX_EDGES
) -> tuple[DataFrame, int]:
    """(doc_id, cluster_id) for every node of the undirected graph `pairs` (a, b); cluster_id = smallest id.

    `oriented=True` promises that `pairs` is materialised, distinct, with a < b (saves a pass). Up to
    `driver_max_edges` edges are labelled on the driver (0 rounds); more take the distributed rounds.

    Alternating large-star and small-star (Kiveris et al., "Connected Components in MapReduce and Beyond",
    SoCC 2014) until the graph is a forest of stars centred on each component's minimum: O(log n) rounds,
    each a few shuffles, with lineage cut after every round.
    """
    from pyspark.sql import functions as F

    edges = pairs.select(F.greatest("a", "b").alias("src"), F.least("a", "b").alias("dst")).where(
        F.col("src") != F.col("dst")
    )
    if not oriented:
        edges = cut_lineage(edges.distinct())
    few = edges.limit(driver_max_edges + 1).toArrow()
    if few.num_rows <= driver_max_edges:
        labelled = smallest_id_labels(few.column("src").combine_chunks(), few.column("dst").combine_chunks())
        schema = "doc_id string, cluster_id string"
        return pairs.sparkSession.createDataFrame(labelled, schema=schema), 0
    # Real dedup graphs always hold some non-star component, so a first round is run without checking.
    rounds = 0
    converged = False
    while not converged:
        if rounds >= max_rounds:
            raise CurateError(f"connected components did not converge in {max_rounds} rounds: raise dedup.max_rounds")
        edges = cut_lineage(_small_star(_large_star(edges)), eager=False)
        rounds += 1
        converged = _is_star_forest(edges)
    roots = edges.select(F.col("dst").alias("doc_id")).distinct().withColumn("cluster_id", F.col("doc_id"))
    members = edges.select(F.col("src").alias("doc_id"), F.col("dst").alias("cluster_id"))
    return members.union(roots), rounds


def smallest_id_labels(left: pa.Array, right: pa.Array) -> pa.Table:
    """(doc_id, cluster_id) for every node of the undirected edges left[i] - right[i]: cluster_id is the
    smallest id (string order) of the node's component."""
    nodes = pc.unique(pa.concat_arrays([left.cast(pa.string()), right.cast(pa.string())]))
    nodes = pc.take(nodes, pc.array_sort_indices(nodes))  # index order = string order: min index = min id
    ends = [np.asarray(pc.index_in(side.cast(pa.string()), value_set=nodes)) for side in (left, right)]
    labels = np.arange(len(nodes))
    while True:
        lowest = np.minimum(labels[ends[0]], labels[ends[1]])
        spread = labels.copy()
        np.minimum.at(spread, ends[0], lowest)
        np.minimum.at(spread, ends[1], lowest)
        while not np.array_equal(jumped := spread[spread], spread):  # every label is an id no larger than its node
            spread = jumped
        if np.array_equal(spread, labels):
            break
        labels = spread
    return pa.table({"doc_id": nodes, "cluster_id": pc.take(nodes, pa.array(labels))})
