"""Phase 3: connected components of the verified pairs (large-star / small-star rounds)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from curate.errors import CurateError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


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


def connected_components(pairs: DataFrame, max_rounds: int = 40, *, oriented: bool = False) -> tuple[DataFrame, int]:
    """(doc_id, cluster_id) for every node of the undirected graph `pairs` (a, b); cluster_id = smallest id.

    `oriented=True` promises that `pairs` is materialised, distinct, with a < b (saves a pass).

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
