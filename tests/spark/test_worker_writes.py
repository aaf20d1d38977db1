"""Local Spark with the Python workers writing a step stage: the same rows and counts as Spark's own writer."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from curate.io.fs import expand_inputs
from curate.io.warc_sources import warc_files_frame
from curate.runners.spark import map_steps
from curate.runners.worker_writes import ATTEMPTS_DIR, write_from_workers
from curate.stage import Inputs, RunContext, Stage
from curate.stage_rows import OutputCounts, read_rejected_table, read_stage_table, write_spark_output
from curate.stages.ingest import FILE_PROBLEMS, IngestConfig, ingest_steps

pytestmark = pytest.mark.spark


def _sorted(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(
        rows, key=lambda row: (str(row.get("doc_id")), str(row.get("warc_path")), str(row.get("drop_reason")))
    )


def _ingest(ctx: RunContext, paths: list[str], writer: str, count_by: tuple[str, ...]) -> dict[str, Any]:
    steps = ingest_steps(IngestConfig())
    options: dict[str, Any] = {"count_by": count_by, "collect_reasons": FILE_PROBLEMS}
    with Stage(ctx, Inputs("01_extract", files=tuple(paths)), config={}, steps=[s.name for s in steps]) as stage:
        df, schema = warc_files_frame(ctx.spark, paths)
        counts: OutputCounts
        if writer == "workers":
            # What a failed or repeated attempt leaves behind: files under a name no counted attempt has.
            stale = Path(stage.tmp_path, ATTEMPTS_DIR, "00000-999999")
            stale.mkdir(parents=True)
            shutil.copy(next(Path(paths[0]).parent.glob("*")), stale / "part-00000.parquet")
            counts = write_from_workers(stage, df, steps, schema, **options)
        else:
            counts = write_spark_output(stage, map_steps(df, steps, schema), **options)
        stage.finish(rows_in=counts.rows_out + sum(counts.drops.values()), rows_out=counts.rows_out, drops=counts.drops)
    return {
        "kept": _sorted(read_stage_table(stage.path).to_pylist()),
        "rejected": _sorted(read_rejected_table(stage.path).to_pylist()),
        "groups": _sorted(counts.groups),
        "collected": _sorted(counts.collected),
        "files": sorted(str(p.relative_to(stage.path)) for p in Path(stage.path).rglob("*.parquet")),
    }


# By file, as ingest counts (one partition per file), and by reason alone, where partitions share keys.
@pytest.mark.parametrize("count_by", [("warc_path",), ()])
def test_workers_write_the_rows_and_counts_spark_writes(
    spark, shared_data: Path, tmp_path: Path, count_by: tuple[str, ...]
) -> None:
    paths = expand_inputs([str(shared_data / "cc-warc"), str(shared_data / "web-warc")])
    ctx = {name: RunContext(str(tmp_path / name), master="local[2]").use_session(spark) for name in ("w", "s")}
    by_workers, by_spark = (_ingest(ctx[n], paths, w, count_by) for n, w in (("w", "workers"), ("s", "spark")))
    assert len(by_workers["kept"]) >= 30 and by_workers["rejected"] and by_workers["collected"]
    for key in ("kept", "rejected", "groups", "collected"):
        assert by_workers[key] == by_spark[key], key
    # One file per partition that has rows, named by the partition; the stale attempt's file is not among them.
    named = {f"{side}part-{index:05d}-000.parquet" for side in ("", "_rejected/") for index in range(len(paths))}
    assert len(by_workers["files"]) >= 4 and set(by_workers["files"]) <= named
    assert not (tmp_path / "w" / "01_extract" / ATTEMPTS_DIR).exists()
    assert pq.read_schema(tmp_path / "w" / "01_extract" / "part-00000-000.parquet").names == list(by_workers["kept"][0])
