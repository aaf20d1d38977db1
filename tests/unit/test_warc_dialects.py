"""WARC dialects through `WarcFileReader.rows()`: the ClueWeb09 form of WARC/0.18 (and 0.17), whole-file gzip,
and the real crawls in the shared data. No peer reads ClueWeb files (warcio stops after the warcinfo record,
fastwarc raises): every record must be read, offsets must point at record starts, bad dates become null.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections import Counter
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.hostile_warcs import INVALID_CLUEWEB_DATES, ClueWebFile, healthy_page, write_clueweb_warc

from curate.io.warc import RecordRow, WarcFileReader
from curate.schema import NOTE_REASON
from curate.stage import Inputs, RunContext
from curate.stages.ingest import FILE_PROBLEMS, IngestConfig, run_extract

SHARED = Path(os.environ.get("CURATE_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
PROBLEMS = {r for r in FILE_PROBLEMS if r != NOTE_REASON}


def _records(rows: list[RecordRow]) -> list[RecordRow]:
    return [r for r in rows if r.warc_record_type is not None]


def _assert_clueweb_read_whole(made: ClueWebFile, rows: list[RecordRow]) -> None:
    records = _records(rows)
    assert not [r for r in rows if r.drop_reason in PROBLEMS], [(r.drop_reason, r.drop_detail) for r in rows]
    assert [r.warc_record_offset for r in records] == list(made.record_offsets)
    ends = [(r.warc_record_offset or 0) + (r.warc_record_length or 0) for r in records]
    assert ends[:-1] == list(made.record_offsets[1:]), "a record's length does not reach the next record's start"
    responses = [r for r in records if r.warc_record_type == "response"]
    assert [r.url for r in responses] == list(made.urls)
    assert all(r.drop_reason is None and r.payload == healthy_page(i) for i, r in enumerate(responses))
    assert all((r.warc_date is None) == (r.url in made.invalid_date_urls) for r in responses)
    assert all(r.warc_date is None or r.warc_date.year == 2009 for r in responses)
    [note] = [r for r in rows if r.drop_reason == NOTE_REASON and "invalid_warc_date" in (r.drop_detail or "")]
    assert note.drop_detail is not None and f"{len(made.invalid_date_urls) + 1} records" in note.drop_detail
    assert INVALID_CLUEWEB_DATES[1] in note.drop_detail  # the warcinfo record's date, the first one


@pytest.mark.parametrize("version", ["0.18", "0.17"])
def test_clueweb_form_file_yields_every_record_at_its_start(tmp_path: Path, version: str) -> None:
    made = write_clueweb_warc(tmp_path / "clueweb.warc.gz", version=version)
    rows = list(WarcFileReader(str(made.path)).rows())
    _assert_clueweb_read_whole(made, rows)
    assert len(_records(rows)) == 101
    assert all((r.warc_record_offset or 0) >= 0 for r in rows)


def test_clueweb_form_uncompressed_and_from_bytes(tmp_path: Path) -> None:
    made = write_clueweb_warc(tmp_path / "clueweb.warc", gzipped=False)
    _assert_clueweb_read_whole(made, list(WarcFileReader(str(made.path)).rows()))
    from_bytes = list(WarcFileReader(str(made.path), data=made.path.read_bytes()).rows())  # as Spark hands it
    _assert_clueweb_read_whole(made, from_bytes)


def test_clueweb_form_through_ingest_is_balanced(tmp_path: Path) -> None:
    made = write_clueweb_warc(tmp_path / "clueweb.warc.gz")
    inputs = Inputs("01_extract", files=(str(made.path),))
    manifest = run_extract(RunContext(str(tmp_path / "run"), runner="local"), inputs, IngestConfig())
    assert manifest.balanced
    per_file = manifest.extra["per_file"][str(made.path)]
    assert per_file["records"] == 101 and per_file["documents"] == 100
    assert per_file["drops"] == {"not_response": 1}
    assert sorted(p["detail"].split(":")[0] for p in manifest.problems) == ["invalid_warc_date", "single_gzip_member"]
    assert all(p["offset"] >= 0 for p in manifest.problems)


def test_a_record_with_a_wrong_content_length_is_named_and_reading_resumes(tmp_path: Path) -> None:
    made = write_clueweb_warc(tmp_path / "clueweb.warc", responses=10, gzipped=False)
    data = made.path.read_bytes()
    # Record 3's Content-Length one digit longer: its block swallows the next record's first lines.
    start = made.record_offsets[3]
    header_end = data.index(b"\n\n", start)
    length_at = data.rindex(b"Content-Length: ", start, header_end) + len(b"Content-Length: ")
    damaged = data[:length_at] + b"1" + data[length_at:]
    made.path.write_bytes(damaged)
    rows = list(WarcFileReader(str(made.path)).rows())
    problems = [r for r in rows if r.drop_reason in PROBLEMS]
    assert problems and all((r.warc_record_offset or 0) > start for r in problems)
    urls = {r.url for r in _records(rows) if r.drop_reason is None}
    assert set(made.urls[:3]) <= urls, "records before the damage were lost"
    assert made.urls[-1] in urls, "reading did not resume after the damaged record"


@pytest.mark.parametrize("bad_record", [0, 2])  # the first record (warcio meets it) or a later one
def test_a_huge_header_line_inside_a_whole_file_gzip_is_bad_header_and_reading_resumes(
    tmp_path: Path, bad_record: int
) -> None:
    made = write_clueweb_warc(tmp_path / "plain.warc", responses=5, gzipped=False)
    data = made.path.read_bytes()
    bad_at = made.record_offsets[bad_record]
    cut = data.index(b"\n", bad_at) + 1
    deflater = zlib.compressobj(1, zlib.DEFLATED, 31)  # streamed: the test never holds the 128 MiB line
    parts = [deflater.compress(data[:cut] + b"X-Padding: ")]
    parts += [deflater.compress(b"a" * 2**20) for _ in range(128)]
    parts += [deflater.compress(b"\n" + data[cut:]), deflater.flush()]
    path = tmp_path / "bomb.warc.gz"
    path.write_bytes(b"".join(parts))
    rows = list(WarcFileReader(str(path)).rows())
    [bad] = [r for r in rows if r.drop_reason == "bad_header"]
    assert bad.warc_record_offset == bad_at and "header line over" in (bad.drop_detail or "")
    kept = [r.url for r in rows if r.warc_record_type == "response" and r.drop_reason is None]
    assert kept == [url for index, url in enumerate(made.urls) if index + 1 != bad_record]  # urls skip warcinfo
    assert not [r for r in rows if r.drop_reason in PROBLEMS]


@pytest.mark.parametrize(
    ("relative", "records"),
    [
        ("web-warc/ia-heritrix-sample-2008/web_sample.warc.gz", 822),  # WARC/0.17, per-record gzip
        ("web-warc/dolma/sample-0000.warc.gz", 48),
        ("web-warc/ukwa-wikipedia-sopa-2012/sopa-wikipedia-homepage.warc.gz", 164),
        ("web-warc/daft/example.warc.gz", 30),  # whole-file gzip
        ("cc-warc/resiliparse/warcfile.warc.gz", 50),
    ],
)
def test_real_crawls_read_every_record_the_manifest_counts(relative: str, records: int) -> None:
    rows = list(WarcFileReader(str(SHARED / relative)).rows())
    assert len(_records(rows)) == records
    assert not [r for r in rows if r.drop_reason in PROBLEMS]


def test_real_crawls_uncompressed_read_the_same_records(tmp_path: Path) -> None:
    """The text framing (plain files) and warcio (per-record gzip) agree on every real record."""
    for relative in ("web-warc/dolma/sample-0000.warc.gz", "cc-warc/resiliparse/warcfile.warc.gz"):
        source = SHARED / relative
        plain = tmp_path / source.name.removesuffix(".gz")
        plain.write_bytes(gzip.decompress(source.read_bytes()))
        gz = _records(list(WarcFileReader(str(source)).rows()))
        text = _records(list(WarcFileReader(str(plain)).rows()))
        assert [(r.url, r.drop_reason, r.payload, r.warc_date) for r in gz] == [
            (r.url, r.drop_reason, r.payload, r.warc_date) for r in text
        ]
        assert not [r for r in text if r.drop_reason in PROBLEMS]
        ends = [(r.warc_record_offset or 0) + (r.warc_record_length or 0) for r in text]
        assert all(end <= nxt for end, nxt in zip(ends, [r.warc_record_offset or 0 for r in text[1:]], strict=False))


# --- fuzzing: damaged real and ClueWeb-form files never raise and stay accounted ---------------------------


@cache
def _fuzz_source(name: str) -> bytes:
    if name == "clueweb":
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            return write_clueweb_warc(Path(tmp) / "c.warc", responses=20, gzipped=False).path.read_bytes()
    if name == "clueweb.gz":
        return gzip.compress(_fuzz_source("clueweb"), mtime=0)
    return (SHARED / name).read_bytes()


SOURCES = ["clueweb", "clueweb.gz", "web-warc/dolma/sample-0000.warc.gz", "web-warc/daft/example.warc.gz"]


@st.composite
def _damaged(draw: st.DrawFn) -> tuple[str, str, bytes]:
    name = draw(st.sampled_from(SOURCES))
    data = _fuzz_source(name)
    at = draw(st.integers(0, len(data) - 1))
    kind = draw(st.sampled_from(["truncate", "flip", "insert", "delete"]))
    if kind == "truncate":
        return name, kind, data[:at]
    if kind == "flip":
        return name, kind, data[:at] + bytes([data[at] ^ (1 << draw(st.integers(0, 7)))]) + data[at + 1 :]
    if kind == "insert":
        return name, kind, data[:at] + draw(st.binary(min_size=1, max_size=200)) + data[at:]
    return name, kind, data[:at] + data[at + draw(st.integers(1, 200)) :]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(case=_damaged())
def test_damaged_files_never_raise_and_every_record_is_a_row(case: tuple[str, str, bytes]) -> None:
    name, kind, damaged = case
    suffix = ".warc.gz" if name.endswith(".gz") else ".warc"
    reader = WarcFileReader(f"/nonexistent/damaged{suffix}", data=damaged)
    rows = list(reader.rows())  # an exception escaping here fails the test
    assert rows, "a file produced no row at all (not even a problem)"
    assert all((r.warc_record_offset or 0) >= 0 for r in rows)
    assert all(r.drop_reason is None or r.drop_detail for r in rows if r.drop_reason != "not_response")
    ids = Counter(r.doc_id for r in rows)
    assert max(ids.values()) == 1, "two rows share a doc_id"
    intact = _records(list(WarcFileReader(f"/nonexistent/intact{suffix}", data=_fuzz_source(name)).rows()))
    records = _records(rows)
    # A deletion can splice the head of one record onto the tail of the next into one well-formed record:
    # no reader can tell that from a valid file (ClueWeb09 carries no digests), so it is left out here.
    named = [r for r in rows if r.drop_reason in PROBLEMS or r.drop_reason == "bad_header"]
    if kind != "delete" and len(records) < len(intact) and not named:
        # Only a cut exactly between records (a valid, shorter file) may lose records without a problem row.
        assert damaged == _fuzz_source(name)[: len(damaged)], f"{len(records)} of {len(intact)} records, no problem"
