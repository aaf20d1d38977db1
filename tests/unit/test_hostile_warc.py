"""Damaged and hostile WARC input through ingest (local runner, no JVM): no crash, every record accounted for,
every problem named by file, and one bad file never costs another file anything.

The property test mutates real WARC files from the shared data (cut, flip a bit, insert or overwrite bytes,
garble a record's first bytes). What it can check without knowing what the damage does:
- records that lie wholly before the damage are still read, with the same doc_id;
- if the damaged file yields a different number of records than the original, a problem names that file
  (unless it was cut exactly between two records: then it is a valid, shorter WARC);
- per file, records = documents + drops; the intact file in the same run gives exactly its usual counts.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tempfile
import tracemalloc
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.hostile_warcs import HEALTHY_URL, content_encoding_bomb, header_line_bomb
from support.warcs import real_pages
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from curate.io.warc import WarcFileReader, make_doc_id
from curate.manifest import Manifest
from curate.schema import NOTE_REASON
from curate.stage import Inputs, RunContext
from curate.stage_rows import read_rejected_table, read_stage_table
from curate.stages.ingest import FILE_PROBLEMS, IngestConfig, run_extract
from curate.stages.registry import EXTRACT

SHARED = Path(os.environ.get("CURATE_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
# Small real files, so each example costs well under a second: per-record gzip (CC), whole-file gzip
# (browsertrix), and the CC file again uncompressed (built at run time).
PER_RECORD_GZIP = SHARED / "cc-warc" / "resiliparse" / "warcfile.warc.gz"
SINGLE_MEMBER = SHARED / "web-warc" / "daft" / "example.warc.gz"
COMPANION = SHARED / "cc-warc" / "whirlwind" / "whirlwind.warc.gz"
PLAIN = "plain"
PROBLEM_REASONS = {r for r in FILE_PROBLEMS if r != NOTE_REASON}


# --- reading a run back ----------------------------------------------------------------------------------


@cache
def _source_bytes(name: str) -> bytes:
    if name == PLAIN:
        return gzip.decompress(PER_RECORD_GZIP.read_bytes())
    return Path(name).read_bytes()


@cache
def _original_records(name: str) -> tuple[tuple[str, int, int], ...]:
    """(doc_id, start, end) of every record of an intact file, as read from a file of the same base name."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / _base_name(name)
        path.write_bytes(_source_bytes(name))
        rows = [r for r in WarcFileReader(str(path)).rows() if r.warc_record_type is not None]
    assert rows and all(r.drop_reason not in PROBLEM_REASONS for r in rows)
    spans = [(str(r.doc_id), r.warc_record_offset or 0, r.warc_record_length or 0) for r in rows]
    return tuple((doc_id, start, start + length) for doc_id, start, length in spans)


def _base_name(name: str) -> str:
    return "warcfile.warc" if name == PLAIN else Path(name).name


def _ingest(paths: list[Path], run_dir: Path) -> Manifest:
    inputs = Inputs(EXTRACT.name(), files=tuple(str(p) for p in paths))
    return run_extract(RunContext(str(run_dir), runner="local"), inputs, IngestConfig())


def _all_rows(run_dir: Path) -> list[dict[str, Any]]:
    stage = str(run_dir / EXTRACT.name())
    kept = read_stage_table(stage, columns=["doc_id", "warc_path", "warc_record_offset"]).to_pylist()
    rejected = read_rejected_table(stage).to_pylist()
    return [{**row, "drop_reason": None} for row in kept] + rejected


def _is_problem_row(row: dict[str, Any]) -> bool:
    """File-level problem rows carry an id derived from the reason instead of a WARC-Record-ID; notes are
    never records."""
    reason = row["drop_reason"]
    return reason == NOTE_REASON or (
        reason in FILE_PROBLEMS
        and row["doc_id"] == make_doc_id(f"problem:{reason}", row["warc_path"], row["warc_record_offset"])
    )


def assert_accounted(manifest: Manifest, paths: list[Path]) -> None:
    assert manifest.balanced
    per_file = manifest.extra["per_file"]
    assert sorted(per_file) == sorted(str(p) for p in paths), "a file is missing from the per-file counts"
    for path, entry in per_file.items():
        assert entry["records"] == entry["documents"] + sum(entry["drops"].values()), path
    assert sum(e["records"] for e in per_file.values()) == manifest.rows_in
    for problem in manifest.problems:
        assert problem["file"] in per_file and problem["reason"] in FILE_PROBLEMS and problem["detail"], problem


@cache
def _companion_counts() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        return _ingest([COMPANION], Path(tmp)).extra["per_file"][str(COMPANION)]


# --- the property ----------------------------------------------------------------------------------------

MUTATIONS = ("truncate", "flip", "insert", "overwrite", "record_header")


@st.composite
def damage(draw: st.DrawFn) -> tuple[str, str, bytes, int]:
    """(source, mutation, damaged bytes, first damaged byte)."""
    source = draw(st.sampled_from([str(PER_RECORD_GZIP), str(SINGLE_MEMBER), PLAIN]))
    data = _source_bytes(source)
    kind = draw(st.sampled_from(MUTATIONS))
    at = draw(st.integers(0, len(data) - 1))
    junk = draw(st.binary(min_size=1, max_size=64))
    if kind == "truncate":
        return source, kind, data[:at], at
    if kind == "flip":
        bit = draw(st.integers(0, 7))
        return source, kind, data[:at] + bytes([data[at] ^ (1 << bit)]) + data[at + 1 :], at
    if kind == "insert":
        return source, kind, data[:at] + junk + data[at:], at
    if kind == "record_header":
        # Garbage where a record (or its gzip member) starts: the reader must resynchronise or give up loudly.
        starts = [start for _, start, _ in _original_records(source)] if source != str(SINGLE_MEMBER) else [0]
        at = draw(st.sampled_from(starts))
    return source, kind, data[:at] + junk + data[at + len(junk) :], at


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
@given(case=damage())
def test_damaged_real_warcs_never_crash_and_never_lose_records_silently(case: tuple[str, str, bytes, int]) -> None:
    source, kind, damaged, at = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in" / _base_name(source)
        path.parent.mkdir()
        path.write_bytes(damaged)
        run_dir = Path(tmp) / "run"
        manifest = _ingest([path, COMPANION], run_dir)
        rows = _all_rows(run_dir)

    assert_accounted(manifest, [path, COMPANION])
    assert manifest.extra["per_file"][str(COMPANION)] == _companion_counts(), "a damaged file changed another"
    assert all(p["file"] == str(path) for p in manifest.problems), "a problem was pinned on the intact file"

    mine = [r for r in rows if r["warc_path"] == str(path)]
    records = {r["doc_id"] for r in mine if not _is_problem_row(r)}
    named = [r for r in mine if r["drop_reason"] in PROBLEM_REASONS]
    original = _original_records(source)
    if source != str(SINGLE_MEMBER):  # offsets of a whole-file gzip are in the decompressed stream
        before = {doc_id for doc_id, _, end in original if end <= at}
        assert before <= records, f"{kind} at {at} lost records that lie before it"
    # A cut that leaves a whole record and at most the blank lines after it cannot be told from a file that ends
    # there: writers end records with two CRLFs, one, or none (ClueWeb09).
    cut_between_records = (
        kind == "truncate"
        and source != str(SINGLE_MEMBER)
        and any(end <= at and not damaged[end:at].strip(b"\r\n") for _, _, end in original)
    )
    if len(records) != len(original) and not cut_between_records:
        assert named, f"{kind} at {at}: {len(records)} of {len(original)} records and no problem named"


# --- explicit cases --------------------------------------------------------------------------------------


def _write_records(path: Path, records: list[tuple[str, list[tuple[str, str]], bytes]]) -> None:
    """Response records (URL, HTTP headers, body), one gzip member each, as Common Crawl writes them."""
    with open(path, "wb") as out:
        writer = WARCWriter(out, gzip=True)
        for url, headers, body in records:
            http = StatusAndHeaders("200 OK", headers, protocol="HTTP/1.1")
            writer.write_record(
                writer.create_warc_record(url, "response", payload=BytesIO(body), length=len(body), http_headers=http)
            )


@pytest.fixture(scope="module")
def page_html() -> bytes:
    """A real math page (MathJax) from the shared data."""
    pages = real_pages(SHARED)
    return next(p.html for p in pages if b"MathJax" in p.html and len(p.html) < 200_000)


def _by_file(manifest: Manifest, path: Path) -> dict[str, Any]:
    return manifest.extra["per_file"][str(path)]


def test_truncated_warc_gz_keeps_what_came_before_and_names_the_cut(tmp_path: Path) -> None:
    data = PER_RECORD_GZIP.read_bytes()
    original = _original_records(str(PER_RECORD_GZIP))
    _, start, end = original[20]
    path = tmp_path / PER_RECORD_GZIP.name
    path.write_bytes(data[: (start + end) // 2])  # cut in the middle of record 21
    manifest = _ingest([path], tmp_path / "run")
    assert_accounted(manifest, [path])
    [problem] = manifest.problems
    assert problem["file"] == str(path) and problem["reason"] == "truncated_record"
    assert problem["offset"] == start
    rows = _all_rows(tmp_path / "run")
    assert {doc_id for doc_id, _, _ in original[:20]} <= {r["doc_id"] for r in rows}
    assert _by_file(manifest, path)["records"] == 21  # 20 whole records and the cut one, dropped


def test_a_file_that_is_not_gzip_is_named_and_the_others_are_read(tmp_path: Path) -> None:
    bogus = tmp_path / "not-really.warc.gz"
    bogus.write_bytes(b"<html><body>this is a web page saved under a WARC name</body></html>\n" * 50)
    manifest = _ingest([bogus, COMPANION], tmp_path / "run")
    assert_accounted(manifest, [bogus, COMPANION])
    assert [(p["file"], p["reason"]) for p in manifest.problems] == [(str(bogus), "unreadable_file")]
    assert _by_file(manifest, COMPANION) == _companion_counts()


def test_an_empty_file_is_named(tmp_path: Path) -> None:
    empty = tmp_path / "empty.warc.gz"
    empty.write_bytes(b"")
    manifest = _ingest([empty], tmp_path / "run")
    assert_accounted(manifest, [empty])
    assert [(p["file"], p["reason"]) for p in manifest.problems] == [(str(empty), "empty_file")]
    assert manifest.rows_out == 0


def test_whole_file_gzip_member_yields_all_records_and_a_cut_one_is_named(tmp_path: Path) -> None:
    manifest = _ingest([SINGLE_MEMBER], tmp_path / "whole")
    assert_accounted(manifest, [SINGLE_MEMBER])
    assert _by_file(manifest, SINGLE_MEMBER)["records"] == 30  # the shared data README's count
    assert manifest.extra["notes"] == 1 and not any(p["reason"] in PROBLEM_REASONS for p in manifest.problems)

    cut = tmp_path / "in" / SINGLE_MEMBER.name
    cut.parent.mkdir()
    cut.write_bytes(SINGLE_MEMBER.read_bytes()[:-200])  # inside the gzip stream, not at a record boundary
    manifest = _ingest([cut], tmp_path / "cut")
    assert_accounted(manifest, [cut])
    assert [p["reason"] for p in manifest.problems if p["reason"] != NOTE_REASON] == ["truncated_record"]
    assert _by_file(manifest, cut)["records"] < 30 + 1


def test_warc_0_17_headers_and_dns_records(tmp_path: Path) -> None:
    heritrix = SHARED / "web-warc" / "ia-heritrix-sample-2008" / "web_sample.warc.gz"
    rows = list(WarcFileReader(str(heritrix)).rows())
    assert len(rows) == 822 and not [r for r in rows if r.drop_reason in FILE_PROBLEMS]
    responses = [r for r in rows if r.warc_record_type == "response" and r.http_status is not None]
    # WARC/0.17 dates are 14 digits (20080430204825); they must parse, not become null.
    assert responses and all(r.warc_date is not None and r.warc_date.year == 2008 for r in responses)
    dns = [r for r in rows if (r.url or "").startswith("dns:")]
    assert dns and all(r.drop_reason == "not_response" and r.payload is None for r in dns)


def test_a_100_mb_page_is_dropped_as_too_large_without_being_held_in_memory(tmp_path: Path, page_html: bytes) -> None:
    path = tmp_path / "huge.warc.gz"
    size = 100 * 2**20
    chunk = (page_html * (2**20 // len(page_html) + 1))[: 2**20]
    http_head = f"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {size}\r\n\r\n".encode()
    warc_head = (
        "WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-000000000100>\r\n"
        "WARC-Date: 2024-05-20T00:00:00Z\r\nWARC-Target-URI: https://example.org/huge.html\r\n"
        f"Content-Type: application/http; msgtype=response\r\nContent-Length: {len(http_head) + size}\r\n\r\n"
    ).encode()
    # Streamed to disk one MiB at a time: the test itself never holds the page either.
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) as out:
        out.write(warc_head + http_head)
        for _ in range(size // len(chunk)):
            out.write(chunk)
        out.write(b"\r\n\r\n")
    with open(path, "ab") as tail:  # a normal page after it must still be read
        writer = WARCWriter(tail, gzip=True)
        http = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
        record = writer.create_warc_record(
            "https://example.org/after.html",
            "response",
            payload=BytesIO(page_html),
            length=len(page_html),
            http_headers=http,
        )
        writer.write_record(record)

    tracemalloc.start()
    try:
        rows = list(WarcFileReader(str(path)).rows())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 * 2**20, f"reading held {peak / 2**20:.0f} MiB"
    huge, after = rows
    assert huge.drop_reason == "too_large" and huge.payload is None
    assert after.drop_reason is None and after.payload == page_html

    manifest = _ingest([path], tmp_path / "run")
    assert_accounted(manifest, [path])
    assert manifest.drops == {"too_large": 1} and manifest.rows_out == 1


def test_binary_bytes_served_as_html_are_non_html(tmp_path: Path, page_html: bytes) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 64
    path = tmp_path / "binary.warc.gz"
    _write_records(
        path,
        [
            ("https://example.org/image.html", [("Content-Type", "text/html; charset=utf-8")], png),
            ("https://example.org/page.html", [("Content-Type", "text/html")], page_html),
        ],
    )
    manifest = _ingest([path], tmp_path / "run")
    assert_accounted(manifest, [path])
    assert manifest.drops == {"non_html": 1} and manifest.rows_out == 1


def test_malformed_urls_are_dropped_with_their_reason(tmp_path: Path, page_html: bytes) -> None:
    path = tmp_path / "urls.warc.gz"
    malformed = ["http://[2001:db8::1/index.html", "http://host:99999/", "http://exa<mple.com/", "http:///no-host"]
    pages = [(url, [("Content-Type", "text/html")], page_html) for url in [*malformed, "https://example.org/fine"]]
    _write_records(path, pages)
    manifest = _ingest([path], tmp_path / "run")
    assert_accounted(manifest, [path])
    assert manifest.drops == {"bad_url": len(malformed)} and manifest.rows_out == 1
    rejected = read_rejected_table(str(tmp_path / "run" / EXTRACT.name())).to_pylist()
    assert all(r["drop_detail"] for r in rejected)


def test_broken_charsets_are_decoded_or_dropped_never_crash(tmp_path: Path) -> None:
    text = "Die Ableitung von x² ist 2x — für alle reellen Zahlen."
    html = f"<html><head><title>Ableitung</title></head><body><p>{text}</p></body></html>"
    path = tmp_path / "charsets.warc.gz"
    _write_records(
        path,
        [
            # An unknown label over valid UTF-8: the label is ignored, the page kept.
            ("https://example.org/a", [("Content-Type", "text/html; charset=x-no-such-charset")], html.encode()),
            # A charset that the bytes contradict (cp1252 bytes labelled UTF-8).
            ("https://example.org/b", [("Content-Type", "text/html; charset=utf-8")], html.encode("cp1252")),
            # Bytes that decode under no charset.
            (
                "https://example.org/c",
                [("Content-Type", "text/html; charset=utf-8")],
                b"<html><body>" + bytes(range(128, 256)) * 40 + b"</body></html>",
            ),
        ],
    )
    manifest = _ingest([path], tmp_path / "run")
    assert_accounted(manifest, [path])
    assert manifest.rows_in == 3 and set(manifest.drops) <= {"decode_error"}
    kept = read_stage_table(str(tmp_path / "run" / EXTRACT.name())).to_pylist()
    assert {"https://example.org/a", "https://example.org/b"} <= {row["url"] for row in kept}
    assert all(text in row["text"] for row in kept if row["url"] in ("https://example.org/a", "https://example.org/b"))


# --- bombs: bounded decompression and bounded headers ------------------------------------------------------

# A child process reads one file and reports its peak RSS: the bound covers everything the reader holds.
# VmHWM, not getrusage: Linux carries ru_maxrss over exec, so a child would inherit pytest's own peak.
_READ_IN_CHILD = """
import json, re, sys
from curate.io.warc import WarcFileReader
rows = [
    {"url": r.url, "reason": r.drop_reason, "detail": r.drop_detail, "payload": len(r.payload or b""),
     "offset": r.warc_record_offset}
    for r in WarcFileReader(sys.argv[1]).rows()
]
peak_kib = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
print(json.dumps({"rows": rows, "peak_rss_mb": peak_kib / 1024}))
"""
RSS_BOUND_MB = 300


def _read_in_child(path: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _READ_IN_CHILD, str(path)], capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(done.stdout)


@pytest.mark.parametrize(("encoding", "size"), [("br", 2**30), ("gzip", 2**28), ("deflate", 2**28)])
def test_content_encoding_bomb_stops_at_the_record_cap(tmp_path: Path, encoding: str, size: int) -> None:
    path = content_encoding_bomb(tmp_path / f"bomb-{encoding}.warc.gz", encoding, decompressed_bytes=size)
    assert path.stat().st_size < 2**20  # a small file...
    report = _read_in_child(path)
    assert report["peak_rss_mb"] < RSS_BOUND_MB, report["peak_rss_mb"]  # ...that does not become a big process
    bomb, healthy = report["rows"]
    assert bomb["reason"] == "too_large" and f"content-encoding {encoding}" in bomb["detail"]
    assert healthy["url"] == HEALTHY_URL and healthy["reason"] is None and healthy["payload"] > 0


@pytest.mark.parametrize("block", ["warc", "http"])
def test_a_huge_header_line_is_dropped_unread_and_reading_goes_on(tmp_path: Path, block: str) -> None:
    path = header_line_bomb(tmp_path / f"header-{block}.warc.gz", 384 * 2**20, block=block)
    report = _read_in_child(path)
    assert report["peak_rss_mb"] < RSS_BOUND_MB, report["peak_rss_mb"]
    before, bomb, after = report["rows"]
    assert before["reason"] is None and after["reason"] is None and after["url"] == HEALTHY_URL
    assert bomb["reason"] == "bad_header" and "header line over" in bomb["detail"]
    assert bomb["offset"] == path.read_bytes().index(b"\x1f\x8b", 1)  # the bomb's gzip member starts there


def test_bombs_through_ingest_are_accounted(tmp_path: Path) -> None:
    paths = [
        content_encoding_bomb(tmp_path / "bomb-br.warc.gz", "br", decompressed_bytes=2**28),
        header_line_bomb(tmp_path / "header.warc.gz", 2**24),
    ]
    manifest = _ingest(paths, tmp_path / "run")
    assert_accounted(manifest, paths)
    assert manifest.drops == {"too_large": 1, "bad_header": 1} and manifest.rows_out == 3
    rejected = {
        r["drop_reason"]: r["drop_detail"]
        for r in read_rejected_table(str(tmp_path / "run" / EXTRACT.name())).to_pylist()
    }
    assert "br" in rejected["too_large"] and "header line" in rejected["bad_header"]


def test_a_huge_header_block_of_short_lines_is_bad_header(tmp_path: Path) -> None:
    path = tmp_path / "block.warc.gz"
    with open(path, "wb") as out:
        writer = WARCWriter(out, gzip=True)
        headers = [("Content-Type", "text/html")] + [(f"X-Cookie-{i}", "v" * 100) for i in range(4000)]
        http = StatusAndHeaders("200 OK", headers, protocol="HTTP/1.1")
        page = b"<html><body><p>a page with too many headers</p></body></html>"
        record = writer.create_warc_record(
            "https://example.org/cookies", "response", payload=BytesIO(page), length=len(page), http_headers=http
        )
        writer.write_record(record)
    [row] = [r for r in WarcFileReader(str(path)).rows() if r.drop_reason != NOTE_REASON]
    assert row.drop_reason == "bad_header" and "header block over" in (row.drop_detail or "")


def test_request_headers_are_never_parsed(tmp_path: Path) -> None:
    # A request record's HTTP headers are not read at all (it is dropped as not_response by its WARC type), so
    # even a header block over the bound costs nothing and the response after it is read as usual.
    path = tmp_path / "requests.warc.gz"
    page = b"<html><body><p>the page after a request with too many headers</p></body></html>"
    with open(path, "wb") as out:
        writer = WARCWriter(out, gzip=True)
        cookies = [(f"X-Cookie-{i}", "v" * 100) for i in range(4000)]
        request = StatusAndHeaders("GET /cookies HTTP/1.1", cookies, is_http_request=True)
        writer.write_record(writer.create_warc_record("https://example.org/cookies", "request", http_headers=request))
        response = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
        writer.write_record(
            writer.create_warc_record(
                "https://example.org/cookies",
                "response",
                payload=BytesIO(page),
                length=len(page),
                http_headers=response,
            )
        )
    first, second = WarcFileReader(str(path)).rows()
    assert (first.drop_reason, first.drop_detail) == ("not_response", "request")
    assert second.drop_reason is None and second.payload == page and second.http_status == 200
