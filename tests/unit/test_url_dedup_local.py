"""Exact-URL dedup under the local runner: the same crawl twice under two file names, no JVM."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.dataset as ds

from curate.schema import DROP_DETAIL, DROP_REASON
from curate.stage import RunContext
from curate.stages.ingest import run_ingest
from curate.stages.registry import EXTRACT, REJECTED_DIR, URL_DEDUP


def _rows(path: Path) -> list[dict]:
    return ds.dataset(path, format="parquet", ignore_prefixes=[".", "_"]).to_table().to_pylist()


def test_each_url_is_kept_once_the_smallest_doc_id_of_equal_fetches(shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "cc-warc/resiliparse/warcfile.warc.gz"
    copies = [tmp_path / "a.warc.gz", tmp_path / "b.warc.gz"]
    for copy in copies:
        shutil.copyfile(source, copy)
    run_dir = tmp_path / "run"
    extract, dedup = run_ingest(RunContext(str(run_dir), runner="local"), [str(p) for p in copies])

    documents = _rows(run_dir / EXTRACT.name())
    per_url: dict[str, list[str]] = {}
    for doc in documents:
        per_url.setdefault(doc["url"], []).append(doc["doc_id"])
    assert len(per_url) > 10 and all(len(ids) == 2 for ids in per_url.values())  # every page fetched twice
    kept = _rows(run_dir / URL_DEDUP.name())
    assert sorted(d["doc_id"] for d in kept) == sorted(min(ids) for ids in per_url.values())
    # Kept rows keep 01_extract's order (the order of the WARC files) and every column.
    order = [d["doc_id"] for d in documents]
    assert [d["doc_id"] for d in kept] == [i for i in order if i in {d["doc_id"] for d in kept}]
    assert kept == [d for d in documents if d["doc_id"] in {k["doc_id"] for k in kept}]
    dropped = _rows(run_dir / URL_DEDUP.name() / REJECTED_DIR)
    assert {(d["doc_id"], d[DROP_REASON], d[DROP_DETAIL]) for d in dropped} == {
        (max(ids), "duplicate_url", f"kept {min(ids)}") for ids in per_url.values()
    }
    assert dedup.rows_in == extract.rows_out == 2 * len(per_url)
    assert dedup.rows_out == len(per_url) and dedup.drops == {"duplicate_url": len(per_url)}
