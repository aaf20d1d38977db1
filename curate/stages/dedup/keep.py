"""Phase 4: the document each cluster keeps, the members removed in its favour, and their drop reason."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from curate.schema import DROP_DETAIL, DROP_REASON, spark_schema
from curate.stages.dedup.candidates import estimated_jaccard, with_exact_jaccard
from curate.stages.dedup.components import DRIVER_MAX_EDGES, connected_components, cut_lineage
from curate.stages.dedup.config import DedupConfig
from curate.stages.dedup.keep_on_driver import DRIVER_MAX_NODES, assign_stars_on_driver, graph_nodes

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from curate.stages.dedup.exact_on_driver import DriverShingleSets


NEAR_DUPLICATE = "near_duplicate"


def keep_order(config: DedupConfig, columns: list[str]) -> list[Column]:
    """The window order of the keep rule over `columns`: nulls last either way."""
    from pyspark.sql import functions as F

    return [
        F.col(name).desc_nulls_last() if descending else F.col(name).asc_nulls_last()
        for name, descending in config.keep_keys(columns)
    ]


def keep_attributes(documents: DataFrame, config: DedupConfig) -> DataFrame:
    from pyspark.sql import functions as F

    wanted = {item.partition(" ")[0] for item in config.keep}
    columns = [F.col("doc_id")]
    if "text_length" in wanted and "text_length" not in documents.columns:
        # n_chars is the text's length when ingest filled it; fall back to counting for rows where it did not.
        length = F.char_length("text")
        if "n_chars" in documents.columns:
            length = F.coalesce(F.col("n_chars"), length)
        columns.append(length.alias("text_length"))
    columns += [F.col(name) for name in sorted(wanted) if name in documents.columns and name != "doc_id"]
    return documents.select(*columns)


def rank_members(
    components: DataFrame, attributes: DataFrame, config: DedupConfig, earlier: DataFrame | None = None
) -> DataFrame:
    """(doc_id, cluster_id, kept_doc_id) for every new document of a component, the kept one included.

    `earlier` holds the doc_ids of an earlier corpus. A component with earlier documents keeps the smallest
    earlier doc_id (the earlier corpus is never edited); otherwise the keep rule ranks its documents.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    window = Window.partitionBy("cluster_id").orderBy(*keep_order(config, attributes.columns))
    new = components if earlier is None else components.join(earlier, "doc_id", "left_anti")
    ranked = new.join(attributes, "doc_id").withColumn("kept_doc_id", F.first("doc_id").over(window))
    if earlier is not None:
        earliest = (
            components.join(earlier, "doc_id", "left_semi")
            .groupBy("cluster_id")
            .agg(F.min("doc_id").alias("earlier_kept"))
        )
        ranked = ranked.join(earliest, "cluster_id", "left").withColumn(
            "kept_doc_id", F.coalesce("earlier_kept", "kept_doc_id")
        )
    return ranked.select("doc_id", "cluster_id", "kept_doc_id")


def assign_stars(
    edges: DataFrame,
    signatures: DataFrame,
    attributes: DataFrame,
    config: DedupConfig,
    earlier: DataFrame | None = None,
    texts: DataFrame | None = None,
    *,
    driver_max_edges: int = DRIVER_MAX_EDGES,
    driver_sets: DriverShingleSets | None = None,
    fetched: pa.Table | None = None,
    edge_table: pa.Table | None = None,
) -> tuple[DataFrame, dict[str, int]]:
    """(doc_id, cluster_id, kept_doc_id, jaccard) for every removed document: each within the threshold of its
    kept one.

    Connected components alone chain: A~B and B~C put A and C together however far apart they are (on the
    benchmark corpus, 6 of 6,687 merged pairs had a true Jaccard below 0.5). So a component only removes the
    members whose own Jaccard with the kept document (as `verify` measures it) reaches `kept_threshold`; the
    rest, with the component's earlier documents other than the kept one, form the residual graph (their
    verified edges among themselves), which the next pass clusters the same way. Every pass assigns at least
    each component's kept document, so the residual shrinks; after `max_passes` whatever is left is kept, never
    removed on a chain.
    Up to `driver_max_edges` edges and `DRIVER_MAX_NODES` nodes the passes run on the driver
    (`keep_on_driver`), with the same result; they measure against `driver_sets` when given, which must hold
    the shingle sets of every document of `edges` that `texts` has, and take the nodes' signatures from
    `fetched` when given (see `keep_on_driver.node_table`). `edge_table` is `edges` (a, b) already on the
    driver.
    """
    from pyspark.sql import functions as F

    few = edge_table if edge_table is not None else edges.select("a", "b").limit(driver_max_edges + 1).toArrow()
    if few.num_rows <= driver_max_edges and len(graph_nodes(few)) <= DRIVER_MAX_NODES:
        return assign_stars_on_driver(few, signatures, attributes, config, earlier, texts, driver_sets, fetched)
    threshold = config.kept_threshold
    sig = signatures.select("doc_id", "minhash")
    kept_sig = sig.select(F.col("doc_id").alias("kept_doc_id"), F.col("minhash").alias("kept_minhash"))
    removed: list[DataFrame] = []
    stats = {"rounds": 0, "passes": 0, "residual": 0}
    active = edges
    while True:
        components, rounds = connected_components(active, config.max_rounds, oriented=True)
        stats["rounds"] += rounds
        stats["passes"] += 1
        ranked = cut_lineage(rank_members(components, attributes, config, earlier), eager=False)
        scored = (
            ranked.where(F.col("doc_id") != F.col("kept_doc_id"))
            .join(sig, "doc_id")
            .join(kept_sig, "kept_doc_id")
            .select("doc_id", "kept_doc_id", estimated_jaccard("minhash", "kept_minhash").alias("jaccard"))
        )
        if config.verify == "exact" and texts is not None:
            scored = with_exact_jaccard(
                scored,
                texts,
                config.minhash.ngram,
                "doc_id",
                "kept_doc_id",
                threshold=threshold,
                margin=config.exact_margin,
            )
        accepted = cut_lineage(scored.where(F.col("jaccard") >= F.lit(threshold)))
        removed.append(accepted)
        settled = accepted.select("doc_id").union(ranked.select(F.col("kept_doc_id").alias("doc_id")))
        residual = components.select("doc_id").join(settled, "doc_id", "left_anti")
        if stats["passes"] >= config.max_passes:
            stats["residual"] = residual.count()
            break
        active = cut_lineage(
            active.join(residual.select(F.col("doc_id").alias("a")), "a", "left_semi").join(
                residual.select(F.col("doc_id").alias("b")), "b", "left_semi"
            ),
            eager=False,
        )
        if active.isEmpty():
            break
    out = removed[0]
    for frame in removed[1:]:
        out = out.unionByName(frame)
    return with_cluster_ids(out), stats


def with_cluster_ids(removed: DataFrame) -> DataFrame:
    """(doc_id, cluster_id, kept_doc_id, jaccard): a star's cluster_id is its smallest doc_id, unique since
    every document is in at most one star."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    smallest = F.least("kept_doc_id", F.min("doc_id").over(Window.partitionBy("kept_doc_id")))
    return removed.withColumn("cluster_id", smallest).select("doc_id", "cluster_id", "kept_doc_id", "jaccard")


def conform_frame(df: DataFrame, schema: pa.Schema) -> DataFrame:
    """`df` with exactly the columns and types of `schema`."""
    from pyspark.sql import functions as F

    return df.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in spark_schema(schema).fields])


def removal_detail(kept_doc_id: Column, jaccard: Column) -> Column:
    """The drop detail of a removed document: its kept document and their Jaccard."""
    from pyspark.sql import functions as F

    return F.format_string("kept %s jaccard %.3f", kept_doc_id, jaccard)


def mark_duplicates(documents: DataFrame, duplicates: DataFrame) -> DataFrame:
    """`documents` plus drop columns: removed documents get `near_duplicate` and the kept doc in the detail."""
    from pyspark.sql import functions as F

    info = duplicates.select("doc_id", F.col("kept_doc_id").alias("_kept"), F.col("jaccard").alias("_jaccard"))
    marked = documents.join(info, "doc_id", "left")
    removed = F.col("_kept").isNotNull()
    detail = removal_detail(F.col("_kept"), F.col("_jaccard"))
    out = marked.select(
        *[F.col(c) for c in documents.columns],
        F.when(removed, F.lit(NEAR_DUPLICATE)).alias(DROP_REASON),
        F.when(removed, detail).alias(DROP_DETAIL),
    )
    lineage = [c for c in ("warc_path", "warc_record_offset") if c in documents.columns]
    return out.sortWithinPartitions(*lineage, "doc_id")
