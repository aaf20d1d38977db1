"""Domain statistics: per domain, pages seen and pages collected this iteration; flag the math-heavy ones.

DeepSeekMath (section 2.1) groups pages by base URL, calls a domain math-related when more than 10% of its
pages were collected, and has people annotate the math URL paths inside it. This stage computes exactly
those numbers on Spark, plus a path-prefix breakdown inside flagged domains (first one and two path
segments) that the annotation review offers as suggestions.

Outputs: `<iter>/04_domains/` (DOMAIN_STATS) and `<iter>/04_domains/_prefixes/` (PREFIX_STATS).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from curate.io import fs
from curate.manifest import Manifest
from curate.schema import DOMAIN_STATS, spark_schema
from curate.stage import RunContext, Stage
from curate.stages.classify import with_collected_flag

DOMAINS_STEP = "domain_stats_v1"
PREFIXES_DIR = "_prefixes"
SAMPLES_PER_PREFIX = 5
SNIPPET_CHARS = 240


@dataclass
class DomainConfig:
    key: str = "host"  # "host" (the paper's base URL) or "registered_domain"
    flag_threshold: float = 0.10
    prefix_depth: int = 2
    min_pages: int = 1


def _path_segments_udf_free(df: Any, depth: int) -> Any:
    """Rows of (doc_id, domain, prefix) for prefixes of 1..depth path segments, with Spark SQL only."""
    from pyspark.sql import functions as F

    path = F.regexp_extract(F.col("url"), r"^[a-zA-Z]+://[^/?#]+(/[^?#]*)?", 1)
    segments = F.filter(F.split(path, "/"), lambda s: s != "")
    exploded = []
    for n in range(1, depth + 1):
        prefix = F.when(
            F.size(segments) >= n,
            # In the annotation pattern form: host without "www.", then the path segments.
            F.concat_ws(
                "/", F.regexp_replace(F.col("host"), r"^www\\.", ""), F.concat_ws("/", F.slice(segments, 1, n))
            ),
        )
        exploded.append(prefix)
    return df.withColumn("prefix", F.explode(F.array(*exploded))).filter(F.col("prefix").isNotNull())


def run_domains(
    ctx: RunContext, name: str, scored_stage: str, selected_stage: str, config: DomainConfig | None = None
) -> Manifest:
    """`scored_stage`: every page of the iteration; `selected_stage`: the pages collected."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    config = config or DomainConfig()
    if config.key not in ("host", "registered_domain"):
        from curate.errors import ConfigError

        raise ConfigError(f"domains.key must be host or registered_domain, got {config.key!r}")
    stage = Stage(
        ctx,
        name,
        config=config.__dict__,
        steps=[DOMAINS_STEP],
        inputs=[scored_stage, selected_stage],
    )
    done = stage.finished()
    if done is not None:
        return done
    stage.begin()
    spark = ctx.spark
    pages = (
        with_collected_flag(spark, scored_stage, selected_stage)
        .select("doc_id", "url", "host", "registered_domain", "text", "collected")
        .withColumn("domain", F.col(config.key))
        .filter(F.col("domain").isNotNull())
    )
    domains = (
        pages.groupBy("domain")
        .agg(F.count("*").alias("pages_seen"), F.sum(F.col("collected").cast("long")).alias("pages_collected"))
        .filter(F.col("pages_seen") >= config.min_pages)
        .withColumn("collected_fraction", F.col("pages_collected") / F.col("pages_seen"))
        .withColumn("flagged", F.col("collected_fraction") > F.lit(config.flag_threshold))
        .select(*[f.name for f in DOMAIN_STATS])
    )
    domains = spark.createDataFrame(domains.rdd, spark_schema(DOMAIN_STATS)).persist()
    domains.orderBy(F.desc("pages_seen"), "domain").coalesce(1).write.mode("overwrite").parquet(
        fs.to_uri(stage.tmp_path)
    )

    flagged = domains.filter("flagged").select("domain")
    in_flagged = pages.join(F.broadcast(flagged), "domain")
    prefixed = _path_segments_udf_free(in_flagged, config.prefix_depth)
    # Samples: the smallest doc ids, so the suggestions are the same on every run.
    ranked = prefixed.withColumn(
        "_rank", F.row_number().over(Window.partitionBy("domain", "prefix").orderBy("doc_id"))
    ).withColumn(
        "_sample",
        F.when(
            F.col("_rank") <= SAMPLES_PER_PREFIX,
            F.struct(F.col("doc_id"), F.col("url"), F.substring(F.col("text"), 1, SNIPPET_CHARS).alias("snippet")),
        ),
    )
    prefixes = ranked.groupBy("domain", "prefix").agg(
        F.count("*").alias("pages_seen"),
        F.sum(F.col("collected").cast("long")).alias("pages_collected"),
        F.array_sort(F.collect_list("_sample")).alias("_samples"),
    )
    prefixes = prefixes.select(
        "domain",
        "prefix",
        "pages_seen",
        "pages_collected",
        (F.col("pages_collected") / F.col("pages_seen")).alias("collected_fraction"),
        F.col("_samples.url").alias("sample_urls"),
        F.col("_samples.snippet").alias("sample_snippets"),
    )
    prefixes.orderBy("domain", F.desc("pages_seen"), "prefix").coalesce(1).write.mode("overwrite").parquet(
        fs.to_uri(fs.join(stage.tmp_path, PREFIXES_DIR))
    )
    n_domains = domains.count()
    top = [
        row.asDict()
        for row in domains.orderBy(F.desc("pages_collected"), F.desc("pages_seen"), "domain").limit(20).collect()
    ]
    n_flagged = domains.filter("flagged").count()
    n_pages = int(pages.count())
    domains.unpersist()
    return stage.commit(
        rows_in=n_domains,
        rows_out=n_domains,
        drops={},
        extra={"pages": n_pages, "flagged_domains": n_flagged, "top_domains": top, "key": config.key},
    )
