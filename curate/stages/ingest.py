"""Ingest: WARC files -> documents with math-preserving text, then exact-URL dedup.

Two stages, because the URL dedup is a shuffle and every shuffle is its own stage:

    01_extract    read WARC records, keep HTTP 200 HTML responses, decode, extract, identify language
    02_url_dedup  one document per normalised URL: the most recent fetch, ties broken by smallest doc_id

Accounting: every WARC record is one row of 01_extract (kept or dropped with a reason), plus one row per
file-level problem (unreadable file, truncation point), so records in = documents out + drops, per file.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from curate.errors import ConfigError
from curate.io import fs
from curate.io.warc import DEFAULT_MAX_RECORD_BYTES
from curate.manifest import Manifest
from curate.runners.huge_pages import transparent_huge_pages_off
from curate.schema import DOCUMENTS, DROP_DETAIL, DROP_REASON, NOTE_REASON, WARC_FILES
from curate.stage import Inputs, RunContext, Stage
from curate.stage_rows import OutputCounts, count_rows, run_step_stage, write_local_output, write_spark_output
from curate.stages.registry import EXTRACT, URL_DEDUP
from curate.step import Step
from curate.steps.extract import (
    DEFAULT_RECORD_TIMEOUT_S,
    DEFAULT_RECORD_TIMEOUT_S_PER_MB,
    DEFAULT_WORKER_MEMORY_MB,
    ExtractStep,
)
from curate.steps.language import LanguageStep
from curate.steps.read_warc import ReadWarcStep
from curate.steps.urls import NormalizeUrlStep

# Problems that concern a whole file rather than one record: the end-of-run summary names these files.
FILE_PROBLEMS = ("unreadable_file", "truncated_record", "empty_file", NOTE_REASON)


@dataclass
class IngestConfig:
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    min_chars: int = 1
    # Extraction runs in a supervised child process: a page that crashes the parser or never finishes costs
    # that record (`extract_crash`, `extract_timeout`), not the worker.
    isolate_extraction: bool = True
    record_timeout_s: float = DEFAULT_RECORD_TIMEOUT_S
    record_timeout_s_per_mb: float = DEFAULT_RECORD_TIMEOUT_S_PER_MB  # more time for each MiB of a page
    worker_memory_mb: int = DEFAULT_WORKER_MEMORY_MB  # 0: no cap

    def __post_init__(self) -> None:
        # A zero or negative limit would drop every record (as too_large or extract_timeout), not stop the job.
        for name in ("max_record_bytes", "record_timeout_s"):
            value = getattr(self, name)
            if isinstance(value, int | float) and not (math.isfinite(value) and value > 0):
                raise ConfigError(f"ingest.{name} must be a finite number above 0, got {value!r}")
        per_mb = self.record_timeout_s_per_mb
        if isinstance(per_mb, int | float) and not (math.isfinite(per_mb) and per_mb >= 0):
            raise ConfigError(f"ingest.record_timeout_s_per_mb must be a finite number, 0 or more, got {per_mb!r}")
        if isinstance(self.worker_memory_mb, int) and self.worker_memory_mb < 0:
            raise ConfigError(f"ingest.worker_memory_mb must be 0 (no cap) or more, got {self.worker_memory_mb}")


def ingest_steps(config: IngestConfig) -> list[Step]:
    return [
        ReadWarcStep(max_record_bytes=config.max_record_bytes),
        NormalizeUrlStep(),
        ExtractStep(
            min_chars=config.min_chars,
            isolated=config.isolate_extraction,
            record_timeout_s=config.record_timeout_s,
            record_timeout_s_per_mb=config.record_timeout_s_per_mb,
            worker_memory_mb=config.worker_memory_mb,
        ),
        LanguageStep(),
    ]


def _per_file_accounting(counts: OutputCounts) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    per_file: dict[str, dict[str, Any]] = {}
    for group in counts.groups:
        item = per_file.setdefault(group["warc_path"], {"records": 0, "documents": 0, "drops": {}})
        reason = group[DROP_REASON]
        if reason == NOTE_REASON:
            continue
        item["records"] += group["count"]
        if reason is None:
            item["documents"] += group["count"]
        else:
            item["drops"][reason] = item["drops"].get(reason, 0) + group["count"]
    for item in per_file.values():
        item["drops"] = dict(sorted(item["drops"].items()))
    problems = sorted(
        (
            {
                "file": row["warc_path"],
                "reason": row[DROP_REASON],
                "offset": row["warc_record_offset"],
                "detail": row[DROP_DETAIL],
            }
            for row in counts.collected
        ),
        key=lambda p: (p["file"], p["offset"] or 0, p["reason"]),
    )
    return problems, {"per_file": dict(sorted(per_file.items()))}


def run_extract(ctx: RunContext, inputs: Inputs, config: IngestConfig) -> Manifest:
    """`inputs.files`: the WARC files. Every record becomes one row, kept or dropped with a reason."""
    with transparent_huge_pages_off() if ctx.runner == "local" else contextlib.nullcontext():
        return run_step_stage(
            ctx,
            inputs,
            ingest_steps(config),
            input_schema=WARC_FILES,
            count_by=("warc_path",),
            collect_reasons=FILE_PROBLEMS,
            accounting=_per_file_accounting,
            # Records are counted from the output itself: each record is exactly one kept or dropped row.
            rows_in=lambda counts: counts.rows_out + sum(n for r, n in counts.drops.items() if r != NOTE_REASON),
        )


URL_DEDUP_STEP = "exact_url_dedup_v1"


def run_url_dedup(ctx: RunContext, inputs: Inputs, config: None = None) -> Manifest:
    """`inputs.stages`: the extract stage. Keeps one document per URL (the latest capture)."""
    (source,) = inputs.stages
    with Stage(ctx, inputs, config={"keep": "latest warc_date, then smallest doc_id"}, steps=[URL_DEDUP_STEP]) as stage:
        if stage.pending:
            if ctx.runner == "local":
                with transparent_huge_pages_off():
                    counts = _url_dedup_local(stage, source)
            else:
                df = ctx.spark.read.parquet(fs.to_uri(source))
                counts = write_spark_output(stage, _flag_url_duplicates_spark(df))
            stage.finish(rows_in=count_rows(ctx, source), rows_out=counts.rows_out, drops=counts.drops)
    return stage.result


def _url_dedup_local(stage: Stage, source: str) -> OutputCounts:
    parts = sorted(str(p) for p in Path(fs.local_path(source)).glob("part-*.parquet"))
    drops = _url_duplicates_local(parts)
    schema = pq.read_schema(parts[0]) if parts else DOCUMENTS
    schema = schema.append(pa.field(DROP_REASON, pa.string())).append(pa.field(DROP_DETAIL, pa.string()))
    return write_local_output(stage, _with_drops(parts, drops), schema)


def _url_duplicates_local(parts: list[str]) -> tuple[list[str | None], list[str | None]]:
    """(reasons, details) for the rows of `parts`, in their order. Only the key columns are read and sorted:
    the text stays on disk, so memory grows with the number of documents, not with their size."""
    if not parts:
        return [], []
    keys = pa.concat_tables(pq.read_table(part, columns=["url", "warc_date", "doc_id"]) for part in parts)
    keys = keys.append_column("_row", pa.array(range(keys.num_rows), pa.int64()))
    ordered = keys.sort_by([("url", "ascending"), ("warc_date", "descending"), ("doc_id", "ascending")])
    urls = ordered.column("url").to_pylist()
    ids = ordered.column("doc_id").to_pylist()
    reasons: list[str | None] = [None] * keys.num_rows
    details: list[str | None] = [None] * keys.num_rows
    kept_id = None
    for i, row in enumerate(ordered.column("_row").to_pylist()):
        if i > 0 and urls[i] == urls[i - 1]:
            reasons[row] = "duplicate_url"
            details[row] = f"kept {kept_id}"
        else:
            kept_id = ids[i]
    return reasons, details


def _with_drops(parts: list[str], drops: tuple[list[str | None], list[str | None]]) -> Iterator[pa.RecordBatch]:
    """The rows of `parts` streamed in their order (01_extract's, the order of the WARC files) with their drops."""
    reasons, details = drops
    done = 0
    for part in parts:
        for batch in pq.ParquetFile(part).iter_batches(batch_size=1000):
            end = done + batch.num_rows
            batch = batch.append_column(DROP_REASON, pa.array(reasons[done:end], pa.string()))
            yield batch.append_column(DROP_DETAIL, pa.array(details[done:end], pa.string()))
            done = end


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
    """`curate ingest`: the extract and URL-dedup stages under their registry names."""
    extract = run_extract(ctx, Inputs(EXTRACT.name(), files=tuple(warc_paths)), config or IngestConfig())
    url_dedup = run_url_dedup(ctx, Inputs(URL_DEDUP.name(), stages=(ctx.stage_dir(extract.stage),)))
    return [extract, url_dedup]
