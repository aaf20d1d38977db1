"""Domain statistics: per domain, pages seen and pages collected this iteration; flag the math-heavy ones.

DeepSeekMath (section 2.1) groups pages by base URL, calls a domain math-related when more than 10% of its
pages were collected, and has people annotate the math URL paths inside it. This stage computes exactly
those numbers on Spark, plus what the annotation review shows for each flagged domain: a path-prefix breakdown
(first one and two path segments, and the subdomains of a registered-domain key), a few collected and uncollected
sample pages, and the uncollected pages a label could bring into the next seed.

Domain and prefix keys are annotation patterns (`curate.annotate.patterns.domain_key`, `url_prefixes`), computed
by the same Python functions the review and the matcher use, so a key in the statistics is a pattern as written.

Outputs of the stage (registry.DOMAINS): DOMAIN_STATS, `_prefixes/` (PREFIX_STATS), `_samples/` (DOMAIN_SAMPLES) and
`_uncollected/` (UNCOLLECTED_PAGES).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from curate.annotate.patterns import domain_key, url_prefixes
from curate.io import fs
from curate.manifest import Manifest
from curate.runners.spark import map_steps
from curate.schema import DOMAIN_STATS, DROP_DETAIL, DROP_REASON, spark_schema
from curate.stage import Inputs, RunContext, Stage
from curate.stages.classify import with_collected_flag
from curate.stages.registry import PREFIXES_DIR, SAMPLES_DIR, UNCOLLECTED_DIR
from curate.step import Step

DOMAINS_STEP = "domain_stats_v2"
KEYS = ("host", "registered_domain")
SAMPLES_PER_PREFIX = 5
SAMPLES_PER_SIDE = 3  # per flagged domain: this many collected and this many uncollected pages
SNIPPET_CHARS = 240
TITLE_CHARS = 120


@dataclass
class DomainConfig:
    key: str = "host"  # "host" (the paper's base URL) or "registered_domain"
    flag_threshold: float = 0.10
    prefix_depth: int = 2
    min_pages: int = 1

    def __post_init__(self) -> None:
        from curate.errors import ConfigError

        if self.key not in KEYS:
            raise ConfigError(f"domains.key must be host or registered_domain, got {self.key!r}")
        if isinstance(self.flag_threshold, bool) or not 0.0 < self.flag_threshold <= 1.0:
            raise ConfigError(f"domains.flag_threshold must be a number in (0, 1], got {self.flag_threshold!r}")
        for name in ("prefix_depth", "min_pages"):
            if getattr(self, name) < 1:
                raise ConfigError(f"domains.{name} must be an integer >= 1, got {getattr(self, name)!r}")


class DomainKeyStep(Step):
    """Adds `domain` (the page's host or registered domain as a pattern; null if none can be) and `url_prefixes`."""

    name = "domain_key_v1"

    def __init__(self, key: str, depth: int) -> None:
        super().__init__()
        self.key = key
        self.depth = depth

    def config(self) -> dict[str, Any]:
        return {"key": self.key, "depth": self.depth}

    def output_schema(self, input_schema: pa.Schema) -> pa.Schema:
        return input_schema.append(pa.field("domain", pa.string())).append(
            pa.field("url_prefixes", pa.list_(pa.string()))
        )

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        domains = [domain_key(name) for name in batch.column(self.key).to_pylist()]
        # Under a registered-domain key a subdomain is itself a suggestion (`math.stackexchange.com`).
        parents = domains if self.key == "registered_domain" else [None] * len(domains)
        prefixes = [
            url_prefixes(url, self.depth, parent) if domain else []
            for url, domain, parent in zip(batch.column("url").to_pylist(), domains, parents, strict=True)
        ]
        batch = batch.append_column("domain", pa.array(domains, pa.string()))
        return batch.append_column("url_prefixes", pa.array(prefixes, pa.list_(pa.string())))


def _keyed_pages(spark: Any, scored_stage: str, selected_stage: str, config: DomainConfig) -> Any:
    pages = with_collected_flag(spark, scored_stage, selected_stage).select(
        "doc_id", "url", "host", "registered_domain", "collected"
    )
    step = DomainKeyStep(config.key, config.prefix_depth)
    return map_steps(pages, [step]).drop(DROP_REASON, DROP_DETAIL)


def _title_and_snippet(text: Any) -> tuple[Any, Any]:
    """Spark columns: the first line of a page's main text as its title, the start of the rest as its snippet."""
    from pyspark.sql import functions as F

    lines = F.split(F.trim(F.coalesce(text, F.lit(""))), "\n", 2)
    title = F.substring(F.trim(lines.getItem(0)), 1, TITLE_CHARS)
    rest = F.when(F.size(lines) > 1, F.trim(lines.getItem(1))).otherwise(F.lit(""))
    return title, F.substring(rest, 1, SNIPPET_CHARS)


def run_domains(ctx: RunContext, inputs: Inputs, config: DomainConfig) -> Manifest:
    """`inputs.stages`: the iteration's scored stage (every page) and its select stage (the pages collected)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    scored_stage, selected_stage = inputs.stages
    with Stage(ctx, inputs, config=config.__dict__, steps=[DOMAINS_STEP, DomainKeyStep.name]) as stage:
        if not stage.pending:
            return stage.result
        spark = ctx.spark
        keyed = _keyed_pages(spark, scored_stage, selected_stage, config).persist()
        texts = spark.read.parquet(fs.to_uri(scored_stage)).select("doc_id", "text")
        pages = keyed.filter(F.col("domain").isNotNull())
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

        prefixed = in_flagged.select("domain", "doc_id", "url", "collected", F.explode("url_prefixes").alias("prefix"))
        counts = prefixed.groupBy("domain", "prefix").agg(
            F.count("*").alias("pages_seen"), F.sum(F.col("collected").cast("long")).alias("pages_collected")
        )
        # Samples: the smallest doc ids, so the suggestions are the same on every run.
        first = prefixed.withColumn(
            "_rank", F.row_number().over(Window.partitionBy("domain", "prefix").orderBy("doc_id"))
        ).filter(F.col("_rank") <= SAMPLES_PER_PREFIX)
        samples = (
            first.join(texts, "doc_id")
            .groupBy("domain", "prefix")
            .agg(
                F.array_sort(
                    F.collect_list(
                        F.struct("doc_id", "url", F.substring(F.col("text"), 1, SNIPPET_CHARS).alias("snippet"))
                    )
                ).alias("_samples")
            )
        )
        prefixes = counts.join(samples, ["domain", "prefix"], "left").select(
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

        # Both sides, so an annotator sees what the classifier already took and what a label would add.
        sides = in_flagged.withColumn(
            "_rank", F.row_number().over(Window.partitionBy("domain", "collected").orderBy("doc_id"))
        ).filter(F.col("_rank") <= SAMPLES_PER_SIDE)
        title, snippet = _title_and_snippet(F.col("text"))
        sides.join(texts, "doc_id").select(
            "domain", "doc_id", "url", "collected", title.alias("title"), snippet.alias("snippet")
        ).orderBy("domain", F.desc("collected"), "doc_id").coalesce(1).write.mode("overwrite").parquet(
            fs.to_uri(fs.join(stage.tmp_path, SAMPLES_DIR))
        )

        # A pattern covers its host's subdomains, which may be domains of their own under a host key: count the
        # uncollected pages of the whole site, so the review's seed estimate covers every page a label can reach.
        sites = in_flagged.select("registered_domain").where(F.col("registered_domain").isNotNull()).distinct()
        keyed.filter(~F.col("collected")).join(F.broadcast(sites), "registered_domain").select(
            "registered_domain", "url"
        ).orderBy("registered_domain", "url").write.mode("overwrite").parquet(
            fs.to_uri(fs.join(stage.tmp_path, UNCOLLECTED_DIR))
        )

        n_domains = domains.count()
        top = [
            row.asDict()
            for row in domains.orderBy(F.desc("pages_collected"), F.desc("pages_seen"), "domain").limit(20).collect()
        ]
        n_flagged = domains.filter("flagged").count()
        n_pages = int(keyed.count())
        without_domain = int(keyed.filter(F.col("domain").isNull()).count())
        domains.unpersist()
        keyed.unpersist()
        stage.finish(
            rows_in=n_domains,
            rows_out=n_domains,
            drops={},
            extra={
                "pages": n_pages,
                # Pages whose host cannot be a pattern (an IP literal with a port, a malformed name): in no domain.
                "pages_without_domain": without_domain,
                "flagged_domains": n_flagged,
                "top_domains": top,
                "key": config.key,
            },
        )
    return stage.result
