"""Golden end-to-end run: `curate run` + `curate export` on a fixed slice of the shared sample, row by row.

The summary compared against `tests/golden/demo_slice.json` holds, for every stage of the run: records in
and out, drops by reason, and a content hash over the sorted (doc_id, xxh3 of text) pairs of the kept rows
(non-document stages: over their sorted rows), plus the same hash over the rejected (doc_id, reason) pairs;
for the export: rows, shards and the content hash of the shards. Anything that changes which documents
survive, or their text, changes the summary.

The golden changes legitimately when extraction, deduplication, the classifier or decontamination change
on purpose. Regenerate it with one command, then read the diff and commit it with the change that
explains it:

    .venv/bin/pytest tests/e2e/test_golden.py --update-golden && git diff tests/golden/
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pytest
import xxhash
import yaml

from curate.run_layout import RunLayout
from curate.schema import DROP_REASON
from curate.stages.registry import REJECTED_DIR

pytestmark = [pytest.mark.spark, pytest.mark.slow]

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "demo_slice.json"
# The demo's inputs (Makefile INPUT): every real WARC in the shared sample, 1,118 records, 144 HTML pages.
INPUTS = ["cc-warc/*/*.warc.gz", "web-warc/*/*.warc.gz"]


def _config(shared_data: Path) -> dict[str, Any]:
    """pipelines/demo.yaml, with a smaller classifier (one seed corpus, few buckets) to keep the test short."""
    return {
        "train": {
            "seed": [str(shared_data / "math-text/stackmathqa")],
            "bucket": 50_000,
            "dim": 32,
            "max_per_class": 400,
        },
        # A token budget ranks by score, so the selection does not hinge on how fastText scores are calibrated.
        "select": {"min_score": None, "token_budget": 30_000},
        "loop": {"iterations": 1},
        "decontaminate": {"data_root": str(shared_data)},
        "export": {"enabled": False},  # `curate export` below, as a user would run it
    }


def _digest(lines: list[str]) -> str:
    digest = xxhash.xxh3_128()
    for line in sorted(lines):
        digest.update(line.encode("utf-8", "surrogatepass") + b"\n")
    return digest.hexdigest()


def _dataset(path: Path) -> pa.Table | None:
    if not path.is_dir() or not any(path.glob("*.parquet")):
        return None
    return ds.dataset(path, format="parquet", ignore_prefixes=[".", "_"]).to_table()


def _rows_digest(table: pa.Table) -> str:
    if {"doc_id", "text"} <= set(table.column_names):
        pairs = zip(table.column("doc_id").to_pylist(), table.column("text").to_pylist(), strict=True)
        return _digest([f"{doc_id}\t{xxhash.xxh3_64_hexdigest(text or '')}" for doc_id, text in pairs])
    return _digest([json.dumps(row, sort_keys=True, default=str) for row in table.to_pylist()])


def summarize(run_dir: Path, export_dir: Path) -> dict[str, Any]:
    layout = RunLayout.load(str(run_dir))
    stages: dict[str, Any] = {}
    for stage in layout.finished():
        manifest = layout.manifest(stage)
        assert manifest is not None and manifest.balanced, stage
        entry: dict[str, Any] = {"rows_in": manifest.rows_in, "rows_out": manifest.rows_out, "drops": manifest.drops}
        kept = _dataset(run_dir / stage)
        if kept is not None:
            assert kept.num_rows == manifest.rows_out, stage
            entry["kept_sha"] = _rows_digest(kept)
        rejected = _dataset(run_dir / stage / REJECTED_DIR)
        if rejected is not None and rejected.num_rows:
            pairs = zip(rejected.column("doc_id").to_pylist(), rejected.column(DROP_REASON).to_pylist(), strict=True)
            entry["rejected_sha"] = _digest([f"{doc_id}\t{reason}" for doc_id, reason in pairs])
        if "model_id" in manifest.extra:
            entry["model_id"] = manifest.extra["model_id"]
        stages[stage] = entry
    export = json.loads((export_dir / "manifest.json").read_text())
    exported = _dataset(export_dir / "data")
    assert exported is not None
    return {
        "inputs": INPUTS,
        "stages": stages,
        "export": {
            "source_stage": export["source_stage"],
            "rows": export["rows"],
            "shards": len(export["shards"]),
            "doc_ids_sha256": export["doc_ids_sha256"],
            "kept_sha": _rows_digest(exported),
        },
    }


@dataclass
class GoldenRun:
    run_dir: Path
    export_dir: Path
    siblings: dict[str, bytes]  # files a user kept beside --out before the export


def _cli(spark, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from curate.cli.main import app

    partitions = spark.conf.get("spark.sql.shuffle.partitions")
    try:  # in-process, on the suite's Spark session (getOrCreate): no second JVM
        result = CliRunner().invoke(app, args)
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", partitions)  # the CLI's session builder resizes it
    assert result.exit_code == 0, result.output


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def golden_run(spark, shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> GoldenRun:
    base = tmp_path_factory.mktemp("golden")
    config = base / "golden.yaml"
    config.write_text(yaml.safe_dump(_config(shared_data)))
    run_dir, export_dir = base / "run", base / "out" / "corpus"
    # What export used to delete: a user's own `<out>.tmp` and `<out>.old` directories.
    for name in ("corpus.tmp", "corpus.old"):
        (base / "out" / name).mkdir(parents=True)
        (base / "out" / name / "mine.txt").write_text(f"{name}: not curate's to delete")
    siblings = _files(base / "out")
    inputs = [arg for pattern in INPUTS for arg in ("--input", str(shared_data / pattern))]
    _cli(spark, ["run", *inputs, "--out", str(run_dir), "--config", str(config)])
    _cli(spark, ["export", "--run", str(run_dir), "--out", str(export_dir)])
    return GoldenRun(run_dir, export_dir, siblings)


def test_demo_slice_matches_the_golden_summary(golden_run: GoldenRun, request: pytest.FixtureRequest) -> None:
    actual = summarize(golden_run.run_dir, golden_run.export_dir)
    if request.config.getoption("--update-golden"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(actual, indent=2, sort_keys=True) + "\n")
        pytest.skip(f"golden rewritten: {GOLDEN} (review `git diff tests/golden/` and commit it)")
    assert GOLDEN.exists(), f"no golden yet: run `.venv/bin/pytest {__file__} --update-golden`"
    golden = json.loads(GOLDEN.read_text())
    changed = sorted(
        name
        for name in set(golden["stages"]) | set(actual["stages"])
        if golden["stages"].get(name) != actual["stages"].get(name)
    )
    hint = "if the change is intended: .venv/bin/pytest tests/e2e/test_golden.py --update-golden"
    assert actual["stages"] == golden["stages"], f"stages that differ from the golden: {changed}; {hint}"
    assert actual == golden, hint


def test_export_leaves_the_users_siblings_of_out_alone(spark, golden_run: GoldenRun) -> None:
    out = golden_run.export_dir.parent
    _cli(spark, ["export", "--run", str(golden_run.run_dir), "--out", str(golden_run.export_dir), "--force"])
    after = {name: data for name, data in _files(out).items() if not name.startswith("corpus/")}
    assert after == golden_run.siblings  # replacing the export touched only its own scratch
    assert sorted(p.name for p in out.iterdir()) == ["corpus", "corpus.old", "corpus.tmp"]
