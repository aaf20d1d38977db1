"""Ingest on the real shared WARC files: accounting, determinism, Spark == local runner, resumability."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from curate.io.fs import expand_inputs
from curate.manifest import Manifest
from curate.stage import RunContext
from curate.stage_rows import read_rejected_table, read_stage_table
from curate.stages.ingest import run_ingest
from curate.stages.registry import EXTRACT, URL_DEDUP

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def warc_paths(shared_data: Path) -> list[str]:
    paths = expand_inputs([str(shared_data / "cc-warc"), str(shared_data / "web-warc")])
    assert len(paths) >= 6
    return paths


@pytest.fixture(scope="module")
def spark_run(spark, warc_paths: list[str], tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[Manifest]]:
    run_dir = str(tmp_path_factory.mktemp("ingest-spark"))
    return run_dir, run_ingest(RunContext(run_dir).use_session(spark), warc_paths)


@pytest.fixture(scope="module")
def local_run(warc_paths: list[str], tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[Manifest]]:
    run_dir = str(tmp_path_factory.mktemp("ingest-local"))
    return run_dir, run_ingest(RunContext(run_dir, runner="local"), warc_paths)


def _sorted_rows(stage_dir: str) -> pa.Table:
    return read_stage_table(stage_dir).sort_by("doc_id")


def test_every_warc_file_yields_documents_and_balances(spark_run, warc_paths: list[str]) -> None:
    _, (extract, dedup) = spark_run
    assert extract.balanced and dedup.balanced
    per_file = extract.extra["per_file"]
    assert sorted(per_file) == sorted(warc_paths)
    for path, entry in per_file.items():
        assert entry["records"] == entry["documents"] + sum(entry["drops"].values()), path
        assert entry["documents"] > 0, f"{path} gave no documents"
    assert extract.rows_out == dedup.rows_in


def test_drop_reasons_are_the_documented_ones(spark_run) -> None:
    _, (extract, _) = spark_run
    assert {"not_response", "non_html", "http_status"} <= set(extract.drops)
    assert set(extract.drops) <= {
        "not_response",
        "http_status",
        "non_html",
        "decode_error",
        "empty_text",
        "bad_url",
        "too_large",
        "truncated_record",
        "unreadable_file",
        "empty_file",
    }


def test_whole_file_gzip_is_read_and_named(spark_run) -> None:
    run_dir, (extract, _) = spark_run
    daft = [p for p in extract.problems if "daft" in p["file"]]
    assert daft and "single_gzip_member" in daft[0]["detail"]
    docs = read_stage_table(str(Path(run_dir) / EXTRACT.name()), columns=["warc_path", "url"]).to_pylist()
    assert any("daft" in d["warc_path"] and "eventualcomputing" in d["url"] for d in docs)


def test_old_warc_017_records_are_parsed(spark_run) -> None:
    _, (extract, _) = spark_run
    heritrix = next(e for p, e in extract.extra["per_file"].items() if "heritrix" in p)
    assert heritrix["records"] == 822
    assert heritrix["documents"] >= 90


def test_rejected_rows_carry_reason_and_lineage(spark_run) -> None:
    run_dir, (extract, _) = spark_run
    rejected = read_rejected_table(str(Path(run_dir) / EXTRACT.name()))
    assert rejected.num_rows == sum(extract.drops.values()) + extract.extra.get("notes", 0)
    assert rejected.column("drop_reason").null_count == 0
    assert rejected.column("warc_path").null_count == 0


def test_documents_have_lineage_and_language(spark_run) -> None:
    run_dir, _ = spark_run
    docs = read_stage_table(str(Path(run_dir) / URL_DEDUP.name())).to_pylist()
    assert len({d["doc_id"] for d in docs}) == len(docs)
    assert len({d["url"] for d in docs}) == len(docs)
    for doc in docs:
        assert doc["warc_record_offset"] is not None and doc["warc_record_length"] > 0
        assert doc["host"] and doc["url"].startswith(("http://", "https://"))
        assert doc["n_chars"] == len(doc["text"]) > 0
    languages = {d["language"] for d in docs}
    assert "en" in languages and len(languages) >= 3  # the crawls hold .cn, .ru, .de pages too


def test_spark_and_local_runners_give_identical_output(spark_run, local_run) -> None:
    for stage in (EXTRACT.name(), URL_DEDUP.name()):
        spark_rows = _sorted_rows(str(Path(spark_run[0]) / stage))
        local_rows = _sorted_rows(str(Path(local_run[0]) / stage))
        # Spark adds its own schema metadata and marks columns nullable; names and types must agree.
        assert [(f.name, f.type) for f in spark_rows.schema] == [(f.name, f.type) for f in local_rows.schema]
        assert spark_rows.num_rows == local_rows.num_rows
        assert spark_rows.to_pylist() == local_rows.to_pylist()
    assert [m.drops for m in spark_run[1]] == [m.drops for m in local_run[1]]


def test_two_runs_give_identical_output(spark, spark_run, warc_paths, tmp_path: Path) -> None:
    second = run_ingest(RunContext(str(tmp_path)).use_session(spark), warc_paths)
    assert [m.fingerprint for m in second] == [m.fingerprint for m in spark_run[1]]
    for stage in (EXTRACT.name(), URL_DEDUP.name()):
        assert _sorted_rows(str(tmp_path / stage)).equals(_sorted_rows(str(Path(spark_run[0]) / stage)))


def test_rerun_skips_finished_stages(spark, spark_run, warc_paths) -> None:
    run_dir, first = spark_run
    again = run_ingest(RunContext(run_dir).use_session(spark), warc_paths)
    assert [m.created for m in again] == [m.created for m in first]
    assert [m.wall_seconds for m in again] == [m.wall_seconds for m in first]
