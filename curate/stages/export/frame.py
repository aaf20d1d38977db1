"""The export rows (Spark): the source documents joined with their lineage, sized and token-counted."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from curate.classify.tokens import DEEPSEEK_BPE
from curate.errors import CurateError
from curate.io import fs
from curate.run_layout import RunLayout
from curate.schema import (
    DECONTAM_CLEAN,
    DECONTAM_CONTAMINATED,
    DECONTAM_UNCHECKED,
    EXPORT,
    N_TOKENS,
    spark_schema,
)
from curate.stages.export.config import ExportConfig
from curate.stages.export.lineage import Lineage
from curate.stages.registry import CONTAMINATION_DIR, DUPLICATES_DIR

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession


def _column_or_null(df: DataFrame, name: str, type_name: str) -> Column:
    from pyspark.sql import functions as F

    return F.col(name) if name in df.columns else F.lit(None).cast(type_name)


def export_frame(spark: SparkSession, layout: RunLayout, lineage: Lineage, tokenizer: str = DEEPSEEK_BPE) -> DataFrame:
    """The source documents with every EXPORT column, lineage joined in (left joins: no row is lost)."""
    from pyspark.sql import functions as F

    def read(stage: str, *sub: str) -> DataFrame:
        return spark.read.parquet(fs.to_uri(fs.join(layout.path(stage), *sub)))

    docs = read(lineage.source)
    if "doc_id" not in docs.columns or "text" not in docs.columns:
        raise CurateError(
            f"stage {lineage.source} does not hold documents (no doc_id/text columns): pick another --stage"
        )
    if N_TOKENS.name not in docs.columns:
        from curate.classify.select import count_tokens_spark

        docs = count_tokens_spark(docs, tokenizer)

    if lineage.selects:
        firsts = None
        for iteration, stage in lineage.selects:
            ids = read(stage).select("doc_id", F.lit(iteration).cast("int").alias("iteration"))
            firsts = ids if firsts is None else firsts.unionByName(ids)
        assert firsts is not None
        docs = docs.drop("iteration").join(
            firsts.groupBy("doc_id").agg(F.min("iteration").alias("iteration")), "doc_id", "left"
        )

    if lineage.dedup is not None:
        # DUPLICATES lists removed documents; the kept one appears only as kept_doc_id.
        dups = read(lineage.dedup, DUPLICATES_DIR)
        members = dups.select("doc_id", "cluster_id").unionByName(
            dups.select(F.col("kept_doc_id").alias("doc_id"), "cluster_id")
        )
        clusters = members.groupBy("doc_id").agg(F.min("cluster_id").alias("dedup_cluster_id"))
        docs = docs.drop("dedup_cluster_id").join(clusters, "doc_id", "left")

    if lineage.decontamination is None:
        status = F.lit(DECONTAM_UNCHECKED)
    elif lineage.decontamination == lineage.source:
        status = F.lit(DECONTAM_CLEAN)
    else:
        hits = read(lineage.decontamination, CONTAMINATION_DIR).select("doc_id").distinct()
        checked = read(lineage.decontamination).select("doc_id")
        docs = docs.join(hits.withColumn("_hit", F.lit(True)), "doc_id", "left").join(
            checked.withColumn("_clean", F.lit(True)), "doc_id", "left"
        )
        status = (
            F.when(F.col("_hit"), F.lit(DECONTAM_CONTAMINATED))
            .when(F.col("_clean"), F.lit(DECONTAM_CLEAN))
            .otherwise(F.lit(DECONTAM_UNCHECKED))
        )

    derived: dict[str, Column] = {
        "domain": F.coalesce(
            _column_or_null(docs, "registered_domain", "string"), _column_or_null(docs, "host", "string")
        ),
        "n_chars": F.coalesce(_column_or_null(docs, "n_chars", "bigint"), F.char_length("text").cast("bigint")),
        "tokens": F.col(N_TOKENS.name),
        "decontamination": status,
    }
    target = spark_schema(EXPORT)
    types = {f.name: f.dataType for f in target.fields}
    selected = docs.select(
        *[
            (derived[name] if name in derived else _column_or_null(docs, name, types[name].simpleString()))
            .cast(types[name])
            .alias(name)
            for name in EXPORT.names
        ]
    )
    # Every column optional, as EXPORT declares: a column Spark knows to be non-null (a literal status, a
    # coalesce) would otherwise be written as required in one export and optional in the next. The guard
    # is on a column Spark cannot prove non-null, so the optimizer cannot fold it away.
    present = F.col("doc_id").isNotNull()
    return selected.select(
        *[F.col(f.name) if f.nullable else F.when(present, F.col(f.name)).alias(f.name) for f in selected.schema.fields]
    )


def estimated_bytes(columns: list[str]) -> Column:
    """Raw bytes of a row: string bytes plus 8 per fixed-width value. Compression is applied separately."""
    from pyspark.sql import functions as F

    strings = {f.name for f in EXPORT if pa.types.is_string(f.type)}
    size: Column = F.lit(8 * len([c for c in columns if c not in strings]))
    for name in columns:
        if name in strings:
            size = size + F.coalesce(F.octet_length(name), F.lit(0))
    return size.cast("bigint")


def token_counter(layout: RunLayout, source_columns: list[str], config: ExportConfig) -> dict[str, Any]:
    """Which tokenizer the `tokens` column was counted with: the stage that added n_tokens says so."""
    from curate.classify.tokens import TokenCountStep

    if N_TOKENS.name not in source_columns:
        return {"tokenizer": config.tokenizer, "counted_by": "export", "exact": config.tokenizer == DEEPSEEK_BPE}
    configs = [(stage, layout.manifest(stage).config or {}) for stage in reversed(layout.finished())]  # type: ignore[union-attr]
    # The token count step of scoring first: a select stage records its tokenizer even when it counted nothing.
    for stage, stage_config in configs:
        tokenizer = ((stage_config.get("steps") or {}).get(TokenCountStep.name) or {}).get("tokenizer")
        if tokenizer:
            return {"tokenizer": tokenizer, "counted_by": stage, "exact": tokenizer == DEEPSEEK_BPE}
    for stage, stage_config in configs:
        tokenizer = (stage_config.get("select") or {}).get("tokenizer")
        if tokenizer:
            return {"tokenizer": tokenizer, "counted_by": stage, "exact": tokenizer == DEEPSEEK_BPE}
    return {"tokenizer": None, "counted_by": "unknown (n_tokens of the source)", "exact": None}


def schema_doc() -> list[dict[str, Any]]:
    return [
        {
            "name": f.name,
            "type": str(f.type),
            "nullable": f.nullable,
            "description": (f.metadata or {}).get(b"description", b"").decode(),
        }
        for f in EXPORT
    ]
