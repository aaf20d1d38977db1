"""Hostile and odd WARC files, generated at test time: decompression bombs, huge header lines, and the
ClueWeb09 dialect of WARC/0.18.

The bombs are built by streaming compressors, one MiB at a time, so that building a file that decompresses
to a GiB never holds that GiB. Every file ends with a healthy page after the hostile record, so a test can
check that reading goes on past it. Output is a function of the arguments only.
"""

from __future__ import annotations

import gzip
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

__all__ = [
    "HEALTHY_URL",
    "ClueWebFile",
    "content_encoding_bomb",
    "header_line_bomb",
    "healthy_page",
    "write_clueweb_warc",
]

HEALTHY_URL = "http://example.org/after-the-bomb.html"
_NAMESPACE = uuid.UUID("0b8c7d5e-3a41-5c55-9e8a-8f1e2b3c4d5e")
_MIB = 2**20
# The invalid dates ClueWeb09 really carries: a day of 119 or 65 does not exist.
INVALID_CLUEWEB_DATES = ("2009-04-119T12:48:17-0400", "2009-03-65T08:43:19-0800")


def healthy_page(index: int = 0) -> bytes:
    return (
        f"<html><head><title>Page {index}</title></head><body><h1>Page {index}</h1>"
        f"<p>The derivative of x squared is two x; this is healthy page number {index}.</p></body></html>\n"
    ).encode()


def _zeros(total: int) -> Iterator[bytes]:
    block = bytes(_MIB)
    for start in range(0, total, _MIB):
        yield block[: min(_MIB, total - start)]


def _compressed(encoding: str, total: int) -> bytes:
    """`total` zero bytes under an HTTP Content-Encoding, compressed as a stream."""
    if encoding == "br":
        import brotli

        compressor = brotli.Compressor(quality=5, lgwin=24)
        return b"".join(compressor.process(chunk) for chunk in _zeros(total)) + compressor.finish()
    wbits = {"gzip": 31, "deflate": 15}[encoding]
    deflater = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return b"".join(deflater.compress(chunk) for chunk in _zeros(total)) + deflater.flush()


def _write_response(writer: WARCWriter, url: str, body: bytes, headers: list[tuple[str, str]]) -> None:
    http = StatusAndHeaders("200 OK", headers, protocol="HTTP/1.1")
    record = writer.create_warc_record(url, "response", payload=BytesIO(body), length=len(body), http_headers=http)
    writer.write_record(record)


def content_encoding_bomb(path: Path, encoding: str, decompressed_bytes: int = 2**30) -> Path:
    """A per-record-gzip WARC: one response whose body is `decompressed_bytes` of zeros under
    `Content-Encoding: <encoding>` (br, gzip or deflate), then a healthy page."""
    body = _compressed(encoding, decompressed_bytes)
    with open(path, "wb") as out:
        writer = WARCWriter(out, gzip=True)
        headers = [("Content-Type", "text/html; charset=utf-8"), ("Content-Encoding", encoding)]
        _write_response(writer, f"http://example.org/bomb-{encoding}.html", body, headers)
        _write_response(writer, HEALTHY_URL, healthy_page(), [("Content-Type", "text/html")])
    return path


def header_line_bomb(path: Path, line_bytes: int = 768 * _MIB, *, block: str = "warc") -> Path:
    """A per-record-gzip WARC: a healthy page, then a record with one header line of `line_bytes` (in the
    WARC header block, or in the HTTP header block when `block="http"`) in its own gzip member, then a
    healthy page. The long line compresses to about a thousandth of its size."""
    with open(path, "wb") as out:
        writer = WARCWriter(out, gzip=True)
        _write_response(
            writer, "http://example.org/before-the-bomb.html", healthy_page(1), [("Content-Type", "text/html")]
        )
        body = healthy_page(2)
        http_head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
        padding_length = line_bytes - len("X-Padding: \r\n")
        http_length = len(http_head) + len(body) + 2 + (line_bytes if block == "http" else 0)
        warc_head = (
            "WARC/1.0\r\nWARC-Type: response\r\n"
            f"WARC-Record-ID: <urn:uuid:{uuid.uuid5(_NAMESPACE, str(path))}>\r\n"
            "WARC-Date: 2024-05-20T00:00:00Z\r\nWARC-Target-URI: http://example.org/header-bomb.html\r\n"
            f"Content-Type: application/http; msgtype=response\r\nContent-Length: {http_length}\r\n"
        ).encode()
        deflater = zlib.compressobj(1, zlib.DEFLATED, 31)
        parts = [deflater.compress(warc_head)]
        if block == "http":
            parts.append(deflater.compress(b"\r\n" + http_head))
        parts.append(deflater.compress(b"X-Padding: "))
        letters = b"a" * _MIB
        for chunk in _zeros(padding_length):
            parts.append(deflater.compress(letters[: len(chunk)]))
        parts.append(deflater.compress(b"\r\n"))
        parts.append(deflater.compress(b"\r\n" + body + b"\r\n\r\n" if block == "http" else b"\r\n" + http_head))
        if block == "warc":
            parts.append(deflater.compress(b"\r\n" + body + b"\r\n\r\n"))
        parts.append(deflater.flush())
        out.write(b"".join(parts))
        _write_response(writer, HEALTHY_URL, healthy_page(3), [("Content-Type", "text/html")])
    return path


@dataclass(frozen=True)
class ClueWebFile:
    path: Path
    record_offsets: tuple[int, ...]  # start of every record (warcinfo first) in the decompressed stream
    urls: tuple[str, ...]  # target URI of every response, in order
    invalid_date_urls: frozenset[str]  # responses whose WARC-Date is not a valid date


def write_clueweb_warc(
    path: Path,
    responses: int = 100,
    pages: list[bytes] | None = None,
    *,
    version: str = "0.18",
    gzipped: bool = True,
) -> ClueWebFile:
    """A WARC/0.18 file as ClueWeb09 writes it: LF-only header lines, each block's Content-Length running
    right up to the next `WARC/0.18` line (no CRLF CRLF between records), invalid WARC-Date values on every
    third response, and the whole file one gzip member (or uncompressed). `pages` (HTML bodies) are used in
    turn if given."""
    info = b"software: Nutch 1.0-dev (modified for clueweb09)\nisPartOf: clueweb09-en\nformat: WARC file version 0.18\n"
    records = [_clueweb_record(version, "warcinfo", None, INVALID_CLUEWEB_DATES[1], info, "application/warc-fields", 0)]
    urls: list[str] = []
    invalid: set[str] = set()
    for index in range(responses):
        url = f"http://www{index % 7}.example.org/clueweb/{index}.html"
        date = INVALID_CLUEWEB_DATES[index % 2] if index % 3 == 0 else f"2009-01-{1 + index % 28:02d}T12:48:17-0400"
        if index % 3 == 0:
            invalid.add(url)
        html = pages[index % len(pages)] if pages else healthy_page(index)
        block = f"HTTP/1.1 200 OK\nContent-Type: text/html\nContent-Length: {len(html)}\n\n".encode() + html
        http_type = "application/http;msgtype=response"
        records.append(_clueweb_record(version, "response", url, date, block, http_type, index + 1))
        urls.append(url)
    offsets, position = [], 0
    for record in records:
        offsets.append(position)
        position += len(record)
    data = b"".join(records)
    path.write_bytes(gzip.compress(data, mtime=0) if gzipped else data)
    return ClueWebFile(path, tuple(offsets), tuple(urls), frozenset(invalid))


def _clueweb_record(
    version: str, kind: str, url: str | None, date: str, block: bytes, content_type: str, sequence: int
) -> bytes:
    lines = [f"WARC/{version}", f"WARC-Type: {kind}"]
    if url:
        lines.append(f"WARC-Target-URI: {url}")
    lines += [
        f"Content-Type: {content_type}",
        f"WARC-Date: {date}",
        f"WARC-Record-ID: <urn:uuid:{uuid.uuid5(_NAMESPACE, f'clueweb-{sequence}')}>",
        f"WARC-TREC-ID: clueweb09-en0000-00-{sequence:05d}",
        f"Content-Length: {len(block)}",
    ]
    return ("\n".join(lines) + "\n\n").encode() + block
