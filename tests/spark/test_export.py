"""Export: shards that four independent readers agree on, lineage columns, size targeting, atomic commit.

Inputs are synthetic run directories (support.runs) built from the real shared web text and URLs,
so these tests do not depend on the other stages' code.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.runs import SyntheticRun, build_synthetic_run, write_generated_stage

from curate.classify.tokens import APPROX, count_tokens
from curate.errors import CurateError
from curate.schema import DECONTAM_CLEAN, DECONTAM_CONTAMINATED, DECONTAM_UNCHECKED, EXPORT
from curate.stage import RunContext
from curate.stage_rows import read_stage_table
from curate.stages.export import MANIFEST_FILE, ExportConfig, read_export_manifest, run_export
from curate.stages.export import stage as export_stage

pytestmark = pytest.mark.spark

SMALL_TARGET = 64 * 1024  # the synthetic corpus is ~250 KB: several shards


def _ids_digest(ids: list[str]) -> str:
    return hashlib.sha256("".join(i + "\n" for i in sorted(ids)).encode()).hexdigest()


def _content_digest(rows: list[tuple[str, str]]) -> str:
    digest = hashlib.sha256()
    for doc_id, text in sorted(rows):
        digest.update(f"{doc_id}\t{hashlib.sha256(text.encode()).hexdigest()}\n".encode())
    return digest.hexdigest()


def _shard_paths(out: Path, manifest: dict[str, Any]) -> list[str]:
    return [str(out / shard["path"]) for shard in manifest["shards"]]


@pytest.fixture(scope="module")
def run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> SyntheticRun:
    return build_synthetic_run(tmp_path_factory.mktemp("export-run"), shared_data, n_docs=400, hostile=True)


@pytest.fixture(scope="module")
def exported(spark, run: SyntheticRun, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("export-out") / "corpus"
    manifest = run_export(
        RunContext(str(run.run_dir)).use_session(spark), str(out), config=ExportConfig(target_shard_bytes=SMALL_TARGET)
    )
    return out, manifest


def test_manifest_describes_every_shard(exported, run: SyntheticRun) -> None:
    out, manifest = exported
    assert manifest == json.loads((out / MANIFEST_FILE).read_text())
    count = len(manifest["shards"])
    assert count >= 3
    names = [f"part-{i:05d}-of-{count:05d}.parquet" for i in range(count)]
    assert [s["name"] for s in manifest["shards"]] == names
    assert [s["path"] for s in manifest["shards"]] == [f"data/{name}" for name in names]
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "data", MANIFEST_FILE]  # README.md: the dataset card
    assert sorted(p.name for p in (out / "data").iterdir()) == names
    for shard in manifest["shards"]:
        data = (out / shard["path"]).read_bytes()
        assert len(data) == shard["bytes"]
        assert hashlib.sha256(data).hexdigest() == shard["sha256"]
        assert pq.ParquetFile(out / shard["path"]).metadata.num_rows == shard["rows"]
    assert manifest["rows"] == sum(s["rows"] for s in manifest["shards"]) == len(run.final_doc_ids)
    assert manifest["bytes"] == sum(s["bytes"] for s in manifest["shards"])
    assert manifest["doc_ids_sha256"] == _ids_digest(run.final_doc_ids)
    assert [f["name"] for f in manifest["schema"]] == EXPORT.names
    assert manifest["source_stage"] == "90_decontaminate"
    assert manifest["token_counter"] == {"tokenizer": APPROX, "counted_by": "iter-02/02_math_score", "exact": False}
    final = read_stage_table(str(run.run_dir / "90_decontaminate"), columns=["n_tokens"])
    assert (
        manifest["tokens"] == sum(final.column("n_tokens").to_pylist()) == sum(s["tokens"] for s in manifest["shards"])
    )
    assert re.fullmatch(r"[0-9a-f]{16}", manifest["config_hash"])
    assert manifest["code_version"]["curate"]


def test_four_readers_agree_with_the_manifest(exported, spark, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, manifest = exported
    paths = _shard_paths(out, manifest)
    results: dict[str, list[tuple[str, str]]] = {}

    table = pa.concat_tables(pq.read_table(p, columns=["doc_id", "text"]) for p in paths)
    results["pyarrow"] = list(zip(table["doc_id"].to_pylist(), table["text"].to_pylist(), strict=True))

    import duckdb

    with duckdb.connect() as con:
        results["duckdb"] = con.execute("SELECT doc_id, text FROM read_parquet(?)", [paths]).fetchall()

    # Spark reads the data directory whole (the manifest sits beside it, not in it).
    results["spark"] = [(r.doc_id, r.text) for r in spark.read.parquet((out / "data").as_uri()).collect()]

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True, raising=False)
    loaded = datasets.load_dataset("parquet", data_files=paths, split="train", cache_dir=str(tmp_path / "hf-cache"))
    results["datasets"] = list(zip(loaded["doc_id"], loaded["text"], strict=True))

    digests = {}
    for reader, rows in results.items():
        assert len(rows) == manifest["rows"], reader
        assert _ids_digest([doc_id for doc_id, _ in rows]) == manifest["doc_ids_sha256"], reader
        digests[reader] = _content_digest(rows)
    assert len(set(digests.values())) == 1, digests
    # pyarrow read the shards in name order: that is already the documented global order.
    assert [doc_id for doc_id, _ in results["pyarrow"]] == sorted(doc_id for doc_id, _ in results["pyarrow"])


def test_rows_carry_their_lineage(exported, run: SyntheticRun) -> None:
    out, manifest = exported
    table = pa.concat_tables(pq.read_table(p) for p in _shard_paths(out, manifest))
    assert table.schema.remove_metadata().equals(EXPORT.remove_metadata())
    for shard in manifest["shards"]:
        ids = pq.read_table(out / shard["path"], columns=["doc_id"]).column(0).to_pylist()
        assert (ids[0], ids[-1]) == (shard["first_doc_id"], shard["last_doc_id"])
    final = {r["doc_id"]: r for r in read_stage_table(str(run.run_dir / "90_decontaminate")).to_pylist()}
    first_selected = {}
    for iteration in sorted(run.selected, reverse=True):
        first_selected.update(dict.fromkeys(run.selected[iteration], iteration))
    for row in table.to_pylist():
        source = final[row["doc_id"]]
        assert row["iteration"] == first_selected[row["doc_id"]]
        assert row["dedup_cluster_id"] == run.clusters.get(row["doc_id"])
        assert row["decontamination"] == DECONTAM_CLEAN
        assert row["domain"] == source["registered_domain"]
        assert row["tokens"] == source["n_tokens"]
        assert (row["text"], row["url"], row["model_id"]) == (source["text"], source["url"], source["model_id"])
        assert (row["warc_path"], row["warc_record_offset"]) == (source["warc_path"], source["warc_record_offset"])
    assert any(row["dedup_cluster_id"] for row in table.to_pylist())
    assert {row["iteration"] for row in table.to_pylist()} == {1, 2}


def test_an_earlier_stage_shows_which_pages_decontamination_removed(spark, run: SyntheticRun, tmp_path: Path) -> None:
    source = run.run_dir / "iter-02" / "03_math_select"  # a full path works as well as a stage name
    manifest = run_export(
        RunContext(str(run.run_dir)).use_session(spark), str(tmp_path / "out"), source_stage=str(source)
    )
    assert manifest["source_stage"] == "iter-02/03_math_select"
    table = pa.concat_tables(pq.read_table(p) for p in _shard_paths(tmp_path / "out", manifest))
    status = dict(zip(table["doc_id"].to_pylist(), table["decontamination"].to_pylist(), strict=True))
    assert sorted(d for d, s in status.items() if s == DECONTAM_CONTAMINATED) == run.contaminated
    assert {s for d, s in status.items() if d not in run.contaminated} == {DECONTAM_CLEAN}


def test_a_stage_before_scoring_gets_tokens_counted_and_all_three_statuses(
    spark, run: SyntheticRun, tmp_path: Path
) -> None:
    config = ExportConfig(target_shard_bytes=2**20, tokenizer=APPROX)
    ctx = RunContext(str(run.run_dir)).use_session(spark)
    manifest = run_export(ctx, str(tmp_path / "out"), source_stage="03_near_dedup", config=config)
    assert manifest["token_counter"] == {"tokenizer": APPROX, "counted_by": "export", "exact": False}
    table = pa.concat_tables(pq.read_table(p) for p in _shard_paths(tmp_path / "out", manifest))
    expected = count_tokens(table["text"].to_pylist(), APPROX).tolist()
    assert table["tokens"].to_pylist() == expected
    rows = table.to_pylist()
    assert {r["decontamination"] for r in rows} == {DECONTAM_CLEAN, DECONTAM_CONTAMINATED, DECONTAM_UNCHECKED}
    ever_selected = {d for ids in run.selected.values() for d in ids}
    assert all((r["iteration"] is None) == (r["doc_id"] not in ever_selected) for r in rows)
    assert all(r["math_score"] is None and r["model_id"] is None for r in rows)


def test_an_unchanged_export_is_not_redone(exported, run: SyntheticRun, spark) -> None:
    out, manifest = exported
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    again = run_export(
        RunContext(str(run.run_dir)).use_session(spark), str(out), config=ExportConfig(target_shard_bytes=SMALL_TARGET)
    )
    assert again == manifest
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def _verify(out: Path) -> dict[str, Any]:
    manifest = read_export_manifest(str(out))
    assert manifest is not None
    for shard in manifest["shards"]:
        assert hashlib.sha256((out / shard["path"]).read_bytes()).hexdigest() == shard["sha256"]
    return manifest


def test_an_interrupted_export_leaves_nothing_where_readers_look(
    spark, run: SyntheticRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "corpus"
    real_move = export_stage.move_shards

    def crash_after_first_shard(shards_dir: str, target: str, count: int) -> list[str]:
        real_move(shards_dir, target, 1)
        raise KeyboardInterrupt("killed while moving shards")

    with monkeypatch.context() as patch:
        patch.setattr(export_stage, "move_shards", crash_after_first_shard)
        with pytest.raises(KeyboardInterrupt):
            run_export(
                RunContext(str(run.run_dir)).use_session(spark),
                str(out),
                config=ExportConfig(target_shard_bytes=SMALL_TARGET),
            )
    assert not out.exists()
    # The debris is beside, not at, the target, under a name only this export used.
    (debris,) = tmp_path.glob("corpus.export-*.tmp")
    assert any((debris / "data").glob("part-*.parquet"))

    # The CLI's export finishes the job (same Spark session: getOrCreate); the debris is not its to delete.
    from typer.testing import CliRunner

    from curate.cli.main import app

    partitions = spark.conf.get("spark.sql.shuffle.partitions")
    try:
        result = CliRunner().invoke(
            app, ["export", "--run", str(run.run_dir), "--out", str(out), "--target-shard-mb", "0.0625"]
        )
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", partitions)  # the CLI's session builder resizes it
    assert result.exit_code == 0, result.output
    first = _verify(out)
    assert [p.name for p in tmp_path.glob("corpus.export-*")] == [debris.name]  # left alone, not reused

    # Replacing an export: a crash before the commit leaves the previous one whole.
    def crash(paths: list[str]) -> str:
        raise KeyboardInterrupt("killed before the manifest")

    with monkeypatch.context() as patch:
        patch.setattr(export_stage, "doc_ids_digest", crash)
        with pytest.raises(KeyboardInterrupt):
            ctx = RunContext(str(run.run_dir), force=True).use_session(spark)
            run_export(ctx, str(out), config=ExportConfig(target_shard_bytes=2 * SMALL_TARGET))
    assert _verify(out) == first


def test_refuses_to_replace_a_directory_that_is_not_an_export(spark, run: SyntheticRun, tmp_path: Path) -> None:
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    with pytest.raises(CurateError, match="not a curate export"):
        run_export(RunContext(str(run.run_dir)).use_session(spark), str(tmp_path / "precious"))
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"


def test_an_empty_corpus_is_one_empty_shard_with_the_schema(spark, run: SyntheticRun, tmp_path: Path) -> None:
    empty_run = tmp_path / "run"
    stage = empty_run / "90_decontaminate"
    stage.mkdir(parents=True)
    source = read_stage_table(str(run.run_dir / "90_decontaminate"))
    pq.write_table(source.slice(0, 0), stage / "part-00000.parquet")
    (stage / "_manifest.json").write_text((run.run_dir / "90_decontaminate" / "_manifest.json").read_text())
    manifest = run_export(RunContext(str(empty_run)).use_session(spark), str(tmp_path / "out"))
    assert manifest["rows"] == 0 and [s["name"] for s in manifest["shards"]] == ["part-00000-of-00001.parquet"]
    table = pq.read_table(tmp_path / "out" / "data" / "part-00000-of-00001.parquet")
    assert table.num_rows == 0 and table.schema.remove_metadata().equals(EXPORT.remove_metadata())
    assert manifest["doc_ids_sha256"] == _ids_digest([])


# --- size targeting on ~380 MB of output -----------------------------------------------------------------

TARGET = 100 * 2**20


@pytest.fixture(scope="module")
def generated_run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~880 MB of text (real words, see support.runs) that zstd turns into ~380 MB of shards."""
    run_dir = tmp_path_factory.mktemp("generated-run")
    write_generated_stage(run_dir / "90_decontaminate", shared_data, 800 * 2**20)
    return run_dir


@pytest.mark.slow
def test_shards_land_within_ten_percent_of_the_target(spark, generated_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    manifest = run_export(
        RunContext(str(generated_run)).use_session(spark), str(out), config=ExportConfig(target_shard_bytes=TARGET)
    )
    sizes = [os.path.getsize(out / s["path"]) for s in manifest["shards"]]
    print(
        f"\nexport: {manifest['bytes'] / 1e6:.0f} MB in {manifest['wall_seconds']:.0f} s "
        f"({manifest['written_mb_per_s']} MB/s written), shards {[round(s / 2**20, 1) for s in sizes]} MiB"
    )
    assert sum(sizes) > 3 * TARGET
    for size in sizes[:-1]:
        assert abs(size - TARGET) <= 0.1 * TARGET, sizes
    assert sizes[-1] <= 1.1 * TARGET
    for shard in manifest["shards"]:
        metadata = pq.ParquetFile(out / shard["path"]).metadata
        assert metadata.row_group(0).column(0).compression == "ZSTD"
        assert all(metadata.row_group(i).num_rows <= 65_536 for i in range(metadata.num_row_groups))


def test_the_dataset_card_loads_the_corpus_and_repeats_the_manifests_counts(
    exported, run: SyntheticRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datasets

    from curate.run_layout import RunLayout
    from curate.stages.dataset_card import CARD_FILE, read_front_matter

    out, manifest = exported
    # datasets caches under HF_HOME; keep it in the test's directory, and offline.
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf" / "datasets")
    corpus = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf" / "datasets"))
    assert list(corpus) == ["train"] and corpus["train"].num_rows == manifest["rows"] == len(run.final_doc_ids)
    assert sorted(corpus["train"]["doc_id"]) == run.final_doc_ids

    card = (out / CARD_FILE).read_text()
    header = read_front_matter(card)
    assert header["configs"][0]["data_files"][0]["path"] == "data/*.parquet"
    assert header["dataset_info"]["splits"][0]["num_examples"] == manifest["rows"]
    layout = RunLayout.load(str(run.run_dir))
    for stage in run.stages:
        stage_manifest = layout.manifest(stage)
        assert stage_manifest is not None
        row = next(line for line in card.splitlines() if line.startswith(f"| {stage} | "))
        assert f"| {stage_manifest.rows_in:,} | {stage_manifest.rows_out:,} |" in row, row
        for reason, count in stage_manifest.drops.items():
            assert f"{reason} {count:,}" in row
    decontam = layout.manifest(run.stages[-1])
    assert decontam is not None
    for bench, found in decontam.extra["contamination"]["per_benchmark"].items():
        assert any(
            line.startswith(f"| {bench} | {found['documents']:,} | {found['hits']:,} |") for line in card.splitlines()
        )
    for shard in manifest["shards"]:
        assert f"| {shard['path']} | {shard['rows']:,} | {shard['bytes']:,} |" in card and shard["sha256"] in card
    assert f"{manifest['rows']:,} documents" in card and "## How to reproduce" in card
