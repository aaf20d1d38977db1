"""Bounded reading of untrusted WARC bytes: header lines, header blocks and HTTP content decoding.

A WARC file is hostile input. Three things in it can make a reader hold far more memory than the file's
size: a header line with no end (warcio's `readline` accumulates it whole), a gzip member that inflates
to gigabytes, and an HTTP body under `Content-Encoding` (warcio decodes it with no cap; brotli reaches a
million to one). Everything here reads in chunks and stops at a fixed bound, so a record that would cross
it is dropped with a reason instead.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, ClassVar

from warcio.archiveiterator import ArchiveIterator
from warcio.bufferedreaders import ChunkedDataReader, DecompressingBufferedReader
from warcio.recordloader import ArcWarcRecordLoader
from warcio.utils import BUFF_SIZE

from curate.io.inflate import GZIP_WBITS, INFLATE_ERRORS, RAW_DEFLATE_WBITS, ZLIB_WBITS, gzip_inflater, inflater
from curate.io.warc_headers import BlockHeadersParser

# Real header lines stay far below these (long cookies and CSP headers reach a few KiB); warcio has none.
MAX_HEADER_LINE = 64 * 2**10
MAX_HEADER_BLOCK = 256 * 2**10
# Longest header block handed to the parser in one piece (`buffered_header_block`): real ones are a few KiB.
# Below both bounds above, so no block taken in one piece is one a line-by-line read would have refused.
MAX_BLOCK_IN_ONE_PIECE = 32 * 2**10
CHUNK = 64 * 2**10
PAYLOAD_PIECE = 4 * 2**20


class HeaderTooLong(ValueError):
    """A WARC or HTTP header line or block over its bound; the record is dropped `bad_header`."""


class _HeaderBudget:
    """Counts the bytes of one header block (the lines read since the last blank line or body read)."""

    def __init__(self) -> None:
        self.block = 0

    def count(self, line: bytes, unfinished: bool) -> None:
        if unfinished:
            raise HeaderTooLong(f"header line over {MAX_HEADER_LINE} bytes")
        if not line.strip(b"\r\n"):
            self.block = 0
            return
        self.block += len(line)
        if self.block > MAX_HEADER_BLOCK:
            raise HeaderTooLong(f"header block over {MAX_HEADER_BLOCK} bytes")


def _line_cap(length: int | None) -> int:
    return MAX_HEADER_LINE + 1 if length is None or length < 0 else min(length, MAX_HEADER_LINE + 1)


class BoundedGzipReader(DecompressingBufferedReader):
    """warcio's reader for (per-record) gzip WARCs, with `readline` bounded: warcio parses headers with
    `readline()` and would otherwise accumulate a 768 MiB line. Inflation itself is already chunked
    (16 KiB of input at a time, so at most ~16 MiB out)."""

    DECOMPRESSORS: ClassVar[dict[str, Callable[[], Any]]] = {
        **DecompressingBufferedReader.DECOMPRESSORS,
        "gzip": gzip_inflater,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._budget = _HeaderBudget()

    def readline(self, length: int | None = None) -> bytes:
        cap = _line_cap(length)
        # A header line usually ends inside the inflated buffer: take it from there, without warcio's per-call
        # refill checks (a record has ~20 header lines).
        head = self.buff.readline(cap) if self.buff is not None else b""
        if head.endswith(b"\n"):
            self._budget.count(head, unfinished=False)
            return head
        parts: list[bytes] = [head] if head else []
        size = len(head)
        while size < cap:
            piece = super().readline(cap - size)
            if not piece:
                break
            parts.append(piece)
            size += len(piece)
            if piece.endswith(b"\n"):
                break
        line = b"".join(parts)
        self._budget.count(line, unfinished=size > MAX_HEADER_LINE and not line.endswith(b"\n"))
        return line

    def read(self, length: int | None = None) -> bytes:
        self._budget.block = 0
        return super().read(length)

    def buffered_header_block(self, limit: int | None) -> bytes | None:
        """The bytes from here through the next empty line (CRLF), if they are within `limit` and the header
        bounds; nothing is consumed (`skip_header_block` does that). A block cut by the end of the inflated
        buffer is completed with the next inflated chunk of the same gzip member, as a line read would."""
        if limit is not None and limit < 2:
            return None  # no room for a block (and at 0 a line read would not fill the buffer either)
        if self.buff is None or self.buff.tell() >= self.buff_size:
            self._fillbuff()  # as the first line read would: a new gzip member starts with a header block
            if self.buff is None:
                return None
        data = self.buff.getvalue()  # the inflated bytes themselves: BytesIO shares them until written
        start = self.buff.tell()
        room = min(MAX_BLOCK_IN_ONE_PIECE, MAX_HEADER_BLOCK - self._budget.block)
        if limit is not None:
            room = min(room, limit)
        if start >= len(data):
            return None
        if data.startswith(b"\r\n", start):
            return data[start : start + 2] if room >= 2 else None
        end = data.find(b"\n\r\n", start, start + room)
        if end < 0 and len(data) - start < room and self._top_up(data, start):
            data, start = self.buff.getvalue(), 0
            end = data.find(b"\n\r\n", 0, room)
        return None if end < 0 else data[start : end + 3]

    def _top_up(self, data: bytes, start: int) -> bool:
        """Append the next inflated chunk of this gzip member to what is left of the buffer."""
        member = self.decompressor
        if member is None or member.unused_data or getattr(member, "eof", False) or self.starting_data:
            return False
        raw = self.stream.read(self.block_size)
        if not raw:
            return False
        more = self._decompress(raw)
        self.num_read += len(more)
        self.num_block_read += len(more)
        merged = data[start:] + more
        self.buff = io.BytesIO(merged)
        self.buff_size = len(merged)
        return True

    def skip_header_block(self, size: int) -> None:
        self.buff.seek(size, 1)
        self._budget.block = 0  # the block's empty line was read


class ResponseHeadersLoader(ArcWarcRecordLoader):
    """warcio's record loader, parsing the HTTP headers of responses only. Request and revisit records are
    dropped unread (`not_response`), and in a Common Crawl file a request precedes every response: parsing its
    headers was a quarter of all header parsing."""

    HTTP_RECORDS = ("response",)

    # WARC and HTTP header blocks are parsed in one piece where the reader holds them (curate.io.warc_headers).
    def __init__(self, verify_http: bool = True, arc2warc: bool = True) -> None:
        super().__init__(verify_http=verify_http, arc2warc=arc2warc)
        self.warc_parser = BlockHeadersParser(self.WARC_TYPES)
        self.http_parser = BlockHeadersParser(self.HTTP_TYPES, verify_http)


class BoundedArchiveIterator(ArchiveIterator):
    def __init__(self, fileobj: BinaryIO, **kwargs: Any) -> None:
        super().__init__(fileobj, **kwargs)
        self.reader = BoundedGzipReader(self.fh, block_size=BUFF_SIZE)
        self.loader = ResponseHeadersLoader(
            verify_http=kwargs.get("verify_http", False), arc2warc=kwargs.get("arc2warc", False)
        )


class LineReader:
    """A buffered reader over an uncompressed WARC stream (a plain file or a whole-file gzip) that knows
    its position. warcio's header parsers read through it, with lines and blocks bounded."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._buffer = b""
        self._start = 0  # position in the stream of _buffer[0]
        self._at = 0  # read position within _buffer
        self._budget = _HeaderBudget()

    def tell(self) -> int:
        return self._start + self._at

    def _fill(self) -> bool:
        """Append the next chunk of the stream, dropping what was consumed; False at its end."""
        chunk = self._stream.read(CHUNK)
        if not chunk:
            return False
        self._start += self._at
        self._buffer = self._buffer[self._at :] + chunk
        self._at = 0
        return True

    def _take(self, size: int) -> bytes:
        data = self._buffer[self._at : self._at + size]
        self._at += len(data)
        return data

    def read(self, length: int | None = None) -> bytes:
        self._budget.block = 0
        length = CHUNK if length is None or length < 0 else length
        if len(self._buffer) - self._at < min(length, CHUNK):
            self._fill()
        if len(self._buffer) - self._at >= length:
            return self._take(length)
        # A long read goes to the stream directly instead of growing the buffer.
        parts = [self._take(length)]
        self._start, self._buffer, self._at = self.tell(), b"", 0
        missing = length - len(parts[0])
        while missing > 0 and (chunk := self._stream.read(missing)):
            parts.append(chunk)
            missing -= len(chunk)
            self._start += len(chunk)
        return b"".join(parts)

    def _line_length(self, cap: int) -> int:
        """Length of the next line through its newline, or `cap`, or what is left of the input."""
        searched = 0
        while True:
            newline = self._buffer.find(b"\n", self._at + searched, self._at + cap)
            if newline >= 0:
                return newline + 1 - self._at
            searched = len(self._buffer) - self._at
            if searched >= cap or not self._fill():
                return min(searched, cap)

    def readline(self, length: int | None = None) -> bytes:
        line = self._take(self._line_length(_line_cap(length)))
        self._budget.count(line, unfinished=len(line) > MAX_HEADER_LINE and not line.endswith(b"\n"))
        return line

    def line_head(self) -> tuple[int, bytes]:
        """(offset, first bytes) of the next line, consuming the whole line however long it is, in chunks.
        Used to look for the next record: it never raises for a long line and never holds it."""
        offset = self.tell()
        head = tail = self._take(self._line_length(MAX_HEADER_LINE))
        while tail and not tail.endswith(b"\n"):
            tail = self._take(self._line_length(MAX_HEADER_LINE))
        self._budget.block = 0
        return offset, head

    def close(self) -> None:
        self._stream.close()


class _Inflater:
    def __init__(self, wbits: int) -> None:
        self._inflater = inflater(wbits)
        self._tail = b""

    def feed(self, data: bytes, room: int) -> bytes:
        # `max_length` keeps one call's output within `room`; the rest of the input waits in unconsumed_tail.
        out = self._inflater.decompress(self._tail + data, room)
        self._tail = self._inflater.unconsumed_tail
        return out

    def hungry(self) -> bool:
        return not self._tail


class _Unbrotli:
    def __init__(self) -> None:
        import brotli  # brotli >= 1.2: the first release whose Decompressor takes output_buffer_limit

        self._decoder = brotli.Decompressor()

    def feed(self, data: bytes, room: int) -> bytes:
        # Input that did not fit under the limit stays inside the decoder: later calls take empty input.
        return bytes(self._decoder.process(data, output_buffer_limit=room))

    def hungry(self) -> bool:
        return bool(self._decoder.can_accept_more_data())


DECODERS: dict[str, Callable[[], _Inflater | _Unbrotli]] = {
    "gzip": lambda: _Inflater(GZIP_WBITS),
    "x-gzip": lambda: _Inflater(GZIP_WBITS),
    "deflate": lambda: _Inflater(ZLIB_WBITS),
    # Servers also send deflate without the zlib wrapper, as warcio knows: tried when the wrapped form fails.
    "deflate-raw": lambda: _Inflater(RAW_DEFLATE_WBITS),
    "br": _Unbrotli,
}


class _DecodeFailed(Exception):
    def __init__(self, cause: BaseException, produced: int) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.produced = produced


def _decoded(raw: bytes, encoding: str, limit: int) -> Iterator[bytes]:
    """`raw` decoded under `encoding`, CHUNK bytes of input at a time, stopping once past `limit` bytes."""
    decoder = DECODERS[encoding]()
    produced = 0
    try:
        for start in range(0, len(raw), CHUNK):
            out = decoder.feed(raw[start : start + CHUNK], limit + 1 - produced)
            while True:
                produced += len(out)
                yield out
                if produced > limit:
                    return
                if decoder.hungry() or not out:
                    break
                out = decoder.feed(b"", limit + 1 - produced)
    except Exception as exc:  # INFLATE_ERRORS, brotli.error (not importable under one stable name)
        raise _DecodeFailed(exc, produced) from exc


def read_http_payload(record: Any, limit: int) -> tuple[bytes | None, str | None, str | None]:
    """(payload, drop reason, drop detail) of an HTTP response record with transfer and content encodings
    undone, reading in chunks and stopping as soon as the payload passes `limit` bytes."""
    headers = record.http_headers
    encoding = (headers.get_header("Content-Encoding") or "").strip().lower()
    chunked = "chunked" in (headers.get_header("Transfer-Encoding") or "").lower()
    # warcio undoes chunking only; its decompression has no cap.
    source = ChunkedDataReader(record.raw_stream) if chunked else record.raw_stream
    # Pieces of a few MiB: a page is then read whole, and warcio's reader joins its buffers once (64 KiB reads
    # copied every page a second time, to join them).
    raw = _bounded_join(iter(lambda: source.read(PAYLOAD_PIECE), b""), limit)
    if raw is None:
        return None, "too_large", f"payload over {limit} bytes"
    if encoding not in DECODERS:  # identity, or a label nobody decodes: sniffing decides later
        return raw, None, None
    attempts = ("deflate", "deflate-raw") if encoding == "deflate" else (encoding,)
    for attempt in attempts:
        try:
            body = _bounded_join(_decoded(raw, attempt, limit), limit)
        except _DecodeFailed as failed:
            if attempt != attempts[-1]:
                continue
            if failed.produced == 0:
                # Some crawlers (browsertrix) store the decoded body but keep the Content-Encoding header:
                # hand the raw bytes on and let HTML sniffing decide.
                return raw, None, None
            return None, "decode_error", f"content-encoding {encoding}: {failed}"[:500]
        if body is None:
            return None, "too_large", f"content-encoding {encoding}: decoded payload over {limit} bytes (stopped there)"
        return body, None, None
    raise AssertionError("unreachable")


def _bounded_join(parts: Iterator[bytes], limit: int) -> bytes | None:
    """The parts joined (one copy; none for a single part), or None as soon as they pass `limit` bytes."""
    kept: list[bytes] = []
    size = 0
    for part in parts:
        kept.append(part)
        size += len(part)
        if size > limit:
            return None
    return b"".join(kept)


def gzip_member_end(stream: BinaryIO, offset: int) -> int | None:
    """Where the gzip member that starts at `offset` (where `stream` is positioned) ends, found by inflating
    it chunk by chunk and throwing the output away; None if the member is cut off or corrupt."""
    member = gzip_inflater()
    position = offset
    while chunk := stream.read(CHUNK):
        position += len(chunk)
        data = chunk
        try:
            while data and not member.eof:
                member.decompress(data, CHUNK)
                data = member.unconsumed_tail
        except INFLATE_ERRORS:
            return None
        if member.eof:
            return position - len(member.unused_data)
    return None
