"""Ingest: WARC files -> documents with math-preserving text, then exact-URL dedup.

Two stages, because the URL dedup is a shuffle and every shuffle is its own stage:

    01_extract    read WARC records, keep HTTP 200 HTML responses, decode, extract, identify language
    02_url_dedup  one document per normalised URL: the most recent fetch, ties broken by smallest doc_id

Accounting: every WARC record is one row of 01_extract (kept or dropped with a reason), plus one row per
file-level problem (unreadable file, truncation point), so records in = documents out + drops, per file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from curate.io import fs
from curate.io.warc import DEFAULT_MAX_RECORD_BYTES
from curate.manifest import Manifest
from curate.schema import DROP_DETAIL, DROP_REASON, NOTE_REASON, WARC_FILES
from curate.stage import REJECTED_DIR, RunContext, Stage, run_step_stage, write_local_output
from curate.step import Step
from curate.steps.extract import ExtractStep
from curate.steps.language import LanguageStep
from curate.steps.read_warc import ReadWarcStep
from curate.steps.urls import NormalizeUrlStep

EXTRACT_STAGE = "01_extract"
URL_DEDUP_STAGE = "02_url_dedup"
# Problems that concern a whole file rather than one record: the end-of-run summary names these files.
FILE_PROBLEMS = ("unreadable_file", "truncated_record", "empty_file", NOTE_REASON)


@dataclass
class IngestConfig:
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    min_chars: int = 1


def ingest_steps(config: IngestConfig) -> list[Step]:
    return [
        ReadWarcStep(max_record_bytes=config.max_record_bytes),
        NormalizeUrlStep(),
        ExtractStep(min_chars=config.min_chars),
        LanguageStep(),
    ]


def _group_counts(ctx: RunContext, path: str, keys: list[str]) -> list[dict[str, Any]]:
    """Row counts of a Parquet dataset grouped by `keys`, computed where the data lives."""
    if ctx.runner == "local":
        import pyarrow.dataset as ds

        table = ds.dataset(fs.local_path(path), format="parquet", ignore_prefixes=[".", "_"]).to_table(
            columns=keys
        )
        grouped = table.group_by(keys).aggregate([([], "count_all")])
        return [{**row, "count": row.pop("count_all")} for row in grouped.to_pylist()]
    rows = ctx.spark.read.parquet(fs.to_uri(path)).groupBy(*keys).count().collect()
    return [row.asDict() for row in rows]


def _per_file_accounting(ctx: RunContext, stage: Stage) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    per_file: dict[str, dict[str, Any]] = {}

    def entry(path: str) -> dict[str, Any]:
        return per_file.setdefault(path, {"records": 0, "documents": 0, "drops": {}})

    for row in _group_counts(ctx, stage.tmp_path, ["warc_path"]):
        item = entry(row["warc_path"])
        item["documents"] += row["count"]
        item["records"] += row["count"]
    rejected_path = fs.join(stage.tmp_path, REJECTED_DIR)
    for row in _group_counts(ctx, rejected_path, ["warc_path", DROP_REASON]):
        item = entry(row["warc_path"])
        if row[DROP_REASON] != NOTE_REASON:
            item["drops"][row[DROP_REASON]] = item["drops"].get(row[DROP_REASON], 0) + row["count"]
            item["records"] += row["count"]
    problems = _file_problems(ctx, rejected_path)
    return problems, {"per_file": dict(sorted(per_file.items()))}


def _file_problems(ctx: RunContext, rejected_path: str) -> list[dict[str, Any]]:
    columns = ["warc_path", "warc_record_offset", DROP_REASON, DROP_DETAIL]
    if ctx.runner == "local":
        import pyarrow.dataset as ds

        table = ds.dataset(fs.local_path(rejected_path), format="parquet").to_table(columns=columns)
        rows = table.filter(pc.is_in(table[DROP_REASON], pa.array(FILE_PROBLEMS))).to_pylist()
    else:
        from pyspark.sql import functions as F

        df = ctx.spark.read.parquet(fs.to_uri(rejected_path)).select(*columns)
        rows = [r.asDict() for r in df.filter(F.col(DROP_REASON).isin(*FILE_PROBLEMS)).collect()]
    return sorted(
        (
            {"file": r["warc_path"], "reason": r[DROP_REASON], "offset": r["warc_record_offset"], "detail": r[DROP_DETAIL]}
            for r in rows
        ),
        key=lambda p: (p["file"], p["offset"] or 0, p["reason"]),
    )


def run_extract(ctx: RunContext, warc_paths: list[str], config: IngestConfig | None = None) -> Manifest:
    config = config or IngestConfig()
    return run_step_stage(
        ctx,
        EXTRACT_STAGE,
        ingest_steps(config),
        input_schema=WARC_FILES,
        source_files=warc_paths,
        accounting=lambda stage: _per_file_accounting(ctx, stage),
        # Records are counted from the output itself: each record is exactly one kept or dropped row.
        rows_in=lambda rows_out, drops: rows_out + sum(n for reason, n in drops.items() if reason != NOTE_REASON),
    )


URL_DEDUP_STEP = "exact_url_dedup_v1"


def run_url_dedup(ctx: RunContext) -> Manifest:
    source = ctx.stage_dir(EXTRACT_STAGE)
    stage = Stage(
        ctx,
        URL_DEDUP_STAGE,
        config={"keep": "latest warc_date, then smallest doc_id"},
        steps=[URL_DEDUP_STEP],
        inputs=[source],
    )
    done = stage.finished()
    if done is not None:
        return done
    stage.begin()
    if ctx.runner == "local":
        import pyarrow.dataset as ds

        table = ds.dataset(fs.local_path(source), format="parquet", ignore_prefixes=[".", "_"]).to_table()
        rows_in = table.num_rows
        flagged = _flag_url_duplicates_local(table)
        rows_out, drops = write_local_output(stage, flagged.to_batches(max_chunksize=1000), flagged.schema)
    else:
        df = ctx.spark.read.parquet(fs.to_uri(source))
        rows_in = df.count()
        from curate.stage import write_spark_output

        rows_out, drops = write_spark_output(stage, _flag_url_duplicates_spark(df))
    return stage.commit(rows_in=rows_in, rows_out=rows_out, drops=drops)


def _flag_url_duplicates_local(table: pa.Table) -> pa.Table:
    ordered = table.sort_by([("url", "ascending"), ("warc_date", "descending"), ("doc_id", "ascending")])
    urls = ordered.column("url").to_pylist()
    ids = ordered.column("doc_id").to_pylist()
    reasons: list[str | None] = []
    details: list[str | None] = []
    kept_id = None
    for i, url in enumerate(urls):
        if i > 0 and url == urls[i - 1]:
            reasons.append("duplicate_url")
            details.append(f"kept {kept_id}")
        else:
            kept_id = ids[i]
            reasons.append(None)
            details.append(None)
    ordered = ordered.append_column(DROP_REASON, pa.array(reasons, pa.string()))
    ordered = ordered.append_column(DROP_DETAIL, pa.array(details, pa.string()))
    # Back to lineage order so the dataset reads in the order of the WARC files.
    return ordered.sort_by([("warc_path", "ascending"), ("warc_record_offset", "ascending"), ("doc_id", "ascending")])


def _flag_url_duplicates_spark(df: Any) -> Any:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    window = Window.partitionBy("url").orderBy(F.col("warc_date").desc_nulls_last(), F.col("doc_id").asc())
    ranked = df.withColumn("_rank", F.row_number().over(window)).withColumn("_kept", F.first("doc_id").over(window))
    duplicate = F.col("_rank") > 1
    return (
        ranked.withColumn(DROP_REASON, F.when(duplicate, F.lit("duplicate_url")))
        .withColumn(DROP_DETAIL, F.when(duplicate, F.concat(F.lit("kept "), F.col("_kept"))))
        .drop("_rank", "_kept")
        .sortWithinPartitions("warc_path", "warc_record_offset", "doc_id")
    )


def run_ingest(ctx: RunContext, warc_paths: list[str], config: IngestConfig | None = None) -> list[Manifest]:
    return [run_extract(ctx, warc_paths, config), run_url_dedup(ctx)]


