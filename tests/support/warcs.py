"""Build WARC files from the real HTML pages in the shared data, for tests and benchmarks.

Public Common Crawl samples are tiny (see the shared data README), so scale tests wrap the ~800 real pages
under `html/` into WARC response records the way Common Crawl writes them: a warcinfo record first, then per
capture a `request` and a `response` record (HTTP/1.1 200), each record gzipped as its own member. Files are
generated at run time under a temporary directory, never committed.

Output is a function of the arguments only: record ids are UUIDv5 of (file name, sequence number, record
type), dates count up one second per capture from `start_date`, and gzip members carry no timestamp. So the
same call writes the same bytes, and two files with different names never share a record id.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import struct
import uuid
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlsplit

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

__all__ = ["FAKE_URL_PREFIX", "Page", "real_pages", "write_warc"]

# RFC 2606 reserves `.invalid`: a valid URL that can never be mistaken for a real host.
FAKE_URL_PREFIX = "http://unknown-url.invalid/"
DEFAULT_START = datetime(2024, 5, 20, 0, 0, 0, tzinfo=UTC)
_NAMESPACE = uuid.UUID("6f1e3c1a-7d3b-5b7e-9a51-3c0de0c0ffee")  # fixed, so ids are reproducible
_USER_AGENT = "curate-testing/1.0 (synthetic capture of a real page)"


@dataclass(frozen=True, slots=True)
class Page:
    url: str
    html: bytes  # as stored (decompressed when the source file is .html.gz), encoding unknown
    source: Path  # the file under the shared data it came from


def real_pages(shared_data: Path) -> list[Page]:
    """Every HTML page under `shared_data/html`, with its real URL where a ground-truth file records it.

    URL sources: llm-webkit-bench `groundtruth/<name>.jsonl` (`url`), article-extraction-benchmark
    `ground-truth.json` (`url` per page hash), trafilatura-tests `evaldata.json` (URL -> `file`). Pages
    without a known http(s) URL (llm-webkit-ccmath, a few trafilatura cache files, the llm-webkit-bench
    trafilatura-tests pages that evaldata.json labels `hard::<file>`) get `FAKE_URL_PREFIX` + their path. Sorted by
    source path, so the order is stable.
    """
    root = shared_data / "html"
    pages: list[Page] = []

    bench = root / "llm-webkit-bench" / "data"
    for origin in sorted((bench / "origin").glob("*.html")):
        truth = bench / "groundtruth" / f"{origin.stem}.jsonl"
        url = None
        if truth.exists():
            url = json.loads(truth.read_text(encoding="utf-8").splitlines()[0]).get("url")
        pages.append(Page(_web_url(url) or _fake_url(origin, root), origin.read_bytes(), origin))

    for path in sorted((root / "llm-webkit-ccmath").glob("*.html")):
        pages.append(Page(_fake_url(path, root), path.read_bytes(), path))

    articles = root / "article-extraction-benchmark"
    truth_by_key = json.loads((articles / "ground-truth.json").read_text(encoding="utf-8"))
    for path in sorted((articles / "html").glob("*.html.gz")):
        key = path.name.removesuffix(".html.gz")
        url = truth_by_key.get(key, {}).get("url")
        pages.append(Page(_web_url(url) or _fake_url(path, root), gzip.decompress(path.read_bytes()), path))

    trafilatura = root / "trafilatura-tests"
    evaldata = json.loads((trafilatura / "evaldata.json").read_text(encoding="utf-8"))
    url_by_file = {entry["file"]: url for url, entry in evaldata.items()}
    for folder in ("cache", "eval"):
        for path in sorted((trafilatura / folder).glob("*.html")):
            pages.append(Page(_web_url(url_by_file.get(path.name)) or _fake_url(path, root), path.read_bytes(), path))
    return pages


def _web_url(url: str | None) -> str | None:
    # trafilatura's evaldata.json labels some pages (`hard::blog.python.org.html`) instead of giving a URL;
    # warcio parses HTTP headers only under an http(s) target URI, so such a capture read as `not_response`.
    return url if url and url.startswith(("http://", "https://")) else None


def _fake_url(path: Path, root: Path) -> str:
    return FAKE_URL_PREFIX + path.relative_to(root).as_posix()


def _warc_uri(url: str) -> str:
    # A few real URLs carry spaces or raw non-ASCII; WARC-Target-URI must be a URI, so percent-encode those
    # characters (and only those: existing escapes and delimiters stay as they are).
    return quote(url, safe=":/?#[]@!$&'()*+,;=%~")


def _with_param(url: str, name: str, value: int) -> str:
    base, _, fragment = url.partition("#")
    joined = f"{base}{'&' if '?' in base else '?'}{name}={value}"
    return f"{joined}#{fragment}" if fragment else joined


def _record_id(warc_name: str, sequence: int, kind: str) -> str:
    return f"<urn:uuid:{uuid.uuid5(_NAMESPACE, f'{warc_name}/{sequence}/{kind}')}>"


def _warc_date(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _content_type(html: bytes) -> str:
    # Declare a charset only when it is certainly right; otherwise readers must sniff, as on the real web.
    try:
        html.decode("utf-8")
    except UnicodeDecodeError:
        return "text/html"
    return "text/html; charset=utf-8"


@dataclass(slots=True)
class _Prepared:
    """What every capture of one page shares: computed once, however many times the page is repeated."""

    payload: bytes
    content_type: str
    payload_digest: str
    block_digest: str
    deflated: bytes | None = None  # raw deflate of the payload ending in a sync flush (byte-aligned, not final)
    crc: int = 0


def _prepare(page: Page, level: int | None) -> _Prepared:
    content_type = _content_type(page.html)
    http_block = StatusAndHeaders("200 OK", _http_headers(page.html, content_type), protocol="HTTP/1.1")
    http_block.compute_headers_buffer()
    prepared = _Prepared(
        payload=page.html,
        content_type=content_type,
        payload_digest=_sha1(page.html),
        block_digest=_sha1(http_block.headers_buff + page.html),
    )
    if level is not None:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
        prepared.deflated = compressor.compress(page.html) + compressor.flush(zlib.Z_SYNC_FLUSH)
        prepared.crc = zlib.crc32(page.html)
    return prepared


def _sha1(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode("ascii")


def _http_headers(html: bytes, content_type: str) -> list[tuple[str, str]]:
    return [("Content-Type", content_type), ("Content-Length", str(len(html)))]


_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no name, mtime 0, OS unknown


class _GzipMembers:
    """A sink for `WARCWriter(gzip=False)` that writes each record as its own gzip member.

    warcio's own gzip mode recompresses every record at level 9: a 20,000-record benchmark file took minutes.
    Here a response whose payload was announced with `expect()` reuses that page's deflated payload: a gzip
    member may hold several raw deflate streams back to back when all but the last end byte-aligned and not
    final (a sync flush), and the CRC is over the concatenated data. Anything unexpected falls back to
    compressing the whole record. warcio calls `flush()` once at the end of every record.
    """

    def __init__(self, out: BinaryIO, level: int) -> None:
        self._out = out
        self._level = level
        self._pending: list[bytes] = []
        self._expected: _Prepared | None = None

    def expect(self, prepared: _Prepared) -> None:
        self._expected = prepared

    def write(self, data: bytes) -> int:
        self._pending.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        prepared, self._expected = self._expected, None
        if prepared is not None and prepared.deflated is not None:
            size = len(prepared.payload)
            head_size = len(data) - size - 4  # the record ends with the payload and CRLF CRLF
            if head_size > 0 and data[head_size : head_size + size] == prepared.payload:
                head, tail = data[:head_size], data[head_size + size :]
                crc = zlib.crc32(tail, zlib.crc32(prepared.payload, zlib.crc32(head)))
                self._out.write(
                    _GZIP_HEADER
                    + self._deflate(head, zlib.Z_SYNC_FLUSH)
                    + prepared.deflated
                    + self._deflate(tail, zlib.Z_FINISH)
                    + struct.pack("<II", crc, len(data) & 0xFFFFFFFF)
                )
                return
        # wbits 31: a complete gzip member; zlib writes mtime 0, so the output is reproducible.
        compressor = zlib.compressobj(self._level, zlib.DEFLATED, 31)
        self._out.write(compressor.compress(data) + compressor.flush())

    def _deflate(self, data: bytes, mode: int) -> bytes:
        compressor = zlib.compressobj(self._level, zlib.DEFLATED, -15)
        return compressor.compress(data) + compressor.flush(mode)


def write_warc(
    pages: Iterable[Page],
    path: Path,
    *,
    repeat: int = 1,
    gzip_per_record: bool = True,
    start_date: datetime = DEFAULT_START,
    compresslevel: int = 1,
) -> int:
    """Write `pages` as a Common Crawl-style WARC to `path`; return the number of response records.

    Each page is captured `repeat` times. URLs are unique within the file: a URL seen before gets `?r=N`
    (N = repeat round) or `?dup=N` (the same URL listed twice in `pages`) appended. With
    `gzip_per_record=False` the file is plain, uncompressed WARC. `compresslevel` is zlib's: level 1 files
    are ~19 % larger than warcio's fixed level 9. Measured here: 4 rounds of the 813 real pages (6,505
    records, 120 MB) take ~15 s, where warcio's own gzip needed ~48 s for half as many.
    """
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    page_list = list(pages)
    path = Path(path)
    warc_name = path.name
    captures = 0
    with path.open("wb") as out:
        sink = _GzipMembers(out, compresslevel) if gzip_per_record else None
        writer = WARCWriter(sink or out, gzip=False, warc_version="1.0")
        info_id = _record_id(warc_name, 0, "warcinfo")
        fields = (
            f"software: curate tests/support/warcs.py\r\nformat: WARC File Format 1.0\r\n"
            f"description: real pages from the curate shared test data, repeated {repeat}x\r\n"
        ).encode()
        writer.write_record(
            writer.create_warc_record(
                "",
                "warcinfo",
                payload=BytesIO(fields),
                length=len(fields),
                warc_content_type="application/warc-fields",
                warc_headers_dict={
                    "WARC-Record-ID": info_id,
                    "WARC-Date": _warc_date(start_date),
                    "WARC-Filename": warc_name,
                },
            )
        )
        prepared = [_prepare(page, compresslevel if sink else None) for page in page_list]
        seen: set[str] = set()
        for round_ in range(repeat):
            for page, shared in zip(page_list, prepared, strict=True):
                real = _warc_uri(page.url)
                base = real if round_ == 0 else _with_param(real, "r", round_)
                url, copy = base, 0
                while url in seen:
                    copy += 1
                    url = _with_param(base, "dup", copy)
                seen.add(url)
                captures += 1
                _write_capture(writer, sink, shared, url, warc_name, captures, info_id, start_date)
    return captures


def _write_capture(
    writer: WARCWriter,
    sink: _GzipMembers | None,
    page: _Prepared,
    url: str,
    warc_name: str,
    sequence: int,
    info_id: str,
    start: datetime,
) -> None:
    date = _warc_date(start + timedelta(seconds=sequence))
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    request_head = (
        f"GET {target} HTTP/1.1\r\nUser-Agent: {_USER_AGENT}\r\n"
        f"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
        f"Host: {parts.netloc}\r\nConnection: Keep-Alive\r\n\r\n"
    ).encode()
    request_id = _record_id(warc_name, sequence, "request")
    writer.write_record(
        writer.create_warc_record(
            url,
            "request",
            payload=BytesIO(request_head),
            length=len(request_head),
            warc_headers_dict={"WARC-Record-ID": request_id, "WARC-Date": date, "WARC-Warcinfo-ID": info_id},
        )
    )
    response = writer.create_warc_record(
        url,
        "response",
        payload=BytesIO(page.payload),
        length=len(page.payload),
        http_headers=StatusAndHeaders("200 OK", _http_headers(page.payload, page.content_type), protocol="HTTP/1.1"),
        warc_headers_dict={
            "WARC-Record-ID": _record_id(warc_name, sequence, "response"),
            "WARC-Date": date,
            "WARC-Warcinfo-ID": info_id,
            "WARC-Concurrent-To": request_id,
            # Precomputed per page, so warcio does not hash the same payload on every repeat.
            "WARC-Payload-Digest": page.payload_digest,
            "WARC-Block-Digest": page.block_digest,
            "WARC-Identified-Payload-Type": "text/html",
        },
    )
    if sink is not None:
        sink.expect(page)
    writer.write_record(response)
