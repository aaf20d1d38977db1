"""WARC inputs read through Spark's Hadoop layer (`binaryFile`) give the same records as local streaming.

`file://` URIs stand in for hdfs://: forced through the same `binaryFile` path, they exercise everything but
the network. (viewfs:// over a local directory runs the whole command in tests/spark/test_object_store.py.)
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from curate.io.fs import expand_inputs
from curate.io.warc_sources import WARC_FILE_CONTENTS, reads_through_hadoop, warc_files_frame
from curate.runners.spark import map_steps
from curate.schema import WARC_FILES
from curate.stages.ingest import IngestConfig, ingest_steps
from curate.step import run_steps

pytestmark = pytest.mark.spark

COLUMNS = ["doc_id", "warc_path", "warc_record_offset", "url", "text", "drop_reason"]


@pytest.fixture(scope="module")
def warc_paths(shared_data: Path) -> list[str]:
    return expand_inputs([str(shared_data / "cc-warc/*/*.warc.gz"), str(shared_data / "web-warc/*/*.warc.gz")])


def _local_rows(paths: list[str]) -> list[dict]:
    steps = ingest_steps(IngestConfig())
    batches = (pa.RecordBatch.from_pydict({"warc_path": [p]}, schema=WARC_FILES) for p in paths)
    table = pa.Table.from_batches(list(run_steps(steps, batches, WARC_FILES)))
    return table.select(COLUMNS).to_pylist()


def test_only_schemes_without_a_python_reader_go_through_hadoop() -> None:
    assert not reads_through_hadoop(["/data/a.warc.gz", "file:///data/b.warc.gz", "relative/c.warc.gz"])
    # Object stores and HTTP are streamed by the executors (tests/spark/test_object_store.py).
    assert not reads_through_hadoop(["s3a://commoncrawl/x.warc.gz", "s3://b/y.warc.gz", "gs://b/z.warc.gz"])
    assert not reads_through_hadoop(["https://data.commoncrawl.org/crawl-data/x.warc.gz"])
    assert reads_through_hadoop(["/data/a.warc.gz", "hdfs://namenode/warc/y.warc.gz"])
    assert reads_through_hadoop(["viewfs://cluster/warc/y.warc.gz"])


def test_file_uris_through_binary_file_give_the_local_records(spark, warc_paths: list[str]) -> None:
    uris = [Path(p).as_uri() for p in warc_paths]
    frame, schema = warc_files_frame(spark, uris, through_hadoop=True)
    assert schema == WARC_FILE_CONTENTS
    files = {row["warc_path"]: len(row["content"]) for row in frame.collect()}
    assert files == {uri: Path(path).stat().st_size for uri, path in zip(uris, warc_paths, strict=True)}

    steps = ingest_steps(IngestConfig())
    out = map_steps(frame, steps, schema)
    remote = [row.asDict() for row in out.select(*COLUMNS).collect()]
    local = _local_rows(warc_paths)
    # doc_ids hash the file's base name, not its full path, so they agree across the two ways of reading.
    back = dict(zip(uris, warc_paths, strict=True))
    for row in remote:
        row["warc_path"] = back[row["warc_path"]]
    key = lambda row: (row["doc_id"], row["drop_reason"] or "")  # noqa: E731
    assert sorted(remote, key=key) == sorted(local, key=key)
    assert len(remote) == 1118 + 1  # every record of the six files, plus the note on the whole-file gzip
