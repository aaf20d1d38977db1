"""The decontamination stage on Spark: same documents, rejects and contamination rows as the local runner."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.dataset as ds
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from support.decontam import BENCHMARKS, check_stage, planted_documents
from support.runs import commit_table_as_stage

from curate.stage import Inputs, RunContext
from curate.stage_rows import read_stage_table
from curate.stages.decontam import DecontamConfig, run_decontaminate
from curate.stages.registry import CONTAMINATION_DIR

pytestmark = pytest.mark.spark


def _hit_rows(stage_dir: str) -> list[tuple]:
    table = ds.dataset(Path(stage_dir, CONTAMINATION_DIR), format="parquet").to_table()
    return sorted(tuple(r.values()) for r in table.to_pylist())


@pytest.mark.parametrize("mode", ["drop", "cut"])
def test_spark_stage_matches_local_runner(spark, shared_data: Path, tmp_path: Path, mode: str) -> None:
    table, plants = planted_documents(shared_data)
    spark_ctx = RunContext(str(tmp_path / "spark"), master="local[2]").use_session(spark)
    local_ctx = RunContext(str(tmp_path / "local"), runner="local")
    results = []
    for ctx in (spark_ctx, local_ctx):
        source = commit_table_as_stage(ctx, "03_near_dedup", table)
        config = DecontamConfig(only=BENCHMARKS, data_root=str(shared_data), mode=mode)
        manifest = run_decontaminate(ctx, Inputs("90_decontaminate", stages=(source,)), config)
        stage_dir = ctx.stage_dir(manifest.stage)
        check_stage(stage_dir, table, plants, mode)
        results.append((manifest, stage_dir))
    (spark_manifest, spark_dir), (local_manifest, local_dir) = results
    assert spark_manifest.runner.startswith("spark")
    assert spark_manifest.extra["contamination"] == local_manifest.extra["contamination"]
    assert (spark_manifest.rows_out, spark_manifest.drops) == (local_manifest.rows_out, local_manifest.drops)
    assert _hit_rows(spark_dir) == _hit_rows(local_dir)
    spark_docs = read_stage_table(spark_dir).sort_by("doc_id")
    local_docs = read_stage_table(local_dir).sort_by("doc_id")
    assert spark_docs["text"].to_pylist() == local_docs["text"].to_pylist()
