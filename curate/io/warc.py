"""Reading WARC files record by record, accounting for every record and every broken file.

Each WARC record becomes exactly one row, kept or dropped with a reason, so that
records in = documents out + drops holds per file. A problem that stops a file (truncation, garbage,
not a WARC at all) becomes one extra row with the reason and the offset where reading stopped: the rest
of the input goes on, and nothing is lost silently.

Two framings behind one entry point (`WarcFileReader.rows()`):
- Per-record gzip (Common Crawl): warcio, with its header reader bounded (`warc_limits`); offsets are
  those of the gzip members.
- Uncompressed streams (plain files, and whole-file gzip such as browsertrix or ClueWeb09 output, which
  warcio does not read past the first record): our own line framing, with warcio's header parsers. It
  reads the ClueWeb09 dialect of WARC/0.18 (bare-LF header lines, no blank line between records) and
  resumes at the next `WARC/` line after a record it cannot parse. Offsets are positions in the
  decompressed stream, and a whole-file gzip is listed as a note `single_gzip_member`.

Bounds (see `warc_limits`): a header line or block over its bound is dropped `bad_header` without being
read into memory; HTTP content decoding (gzip, deflate, br) stops at `max_record_bytes` (`too_large`);
huge records are skipped by their Content-Length. WARC-Date values that are not dates (ClueWeb09 writes
`2009-04-119T12:48:17-0400`) are stored as null and counted in one note per file. WARC/0.17 and `dns:`
records: warcio parses the headers; non-HTTP records are drops.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO, cast

from warcio.archiveiterator import ArchiveIterator
from warcio.exceptions import ArchiveLoadFailed

from curate.extraction.decode import HTML_TYPES
from curate.io import fs
from curate.io.inflate import INFLATE_ERRORS
from curate.io.warc_limits import (
    CHUNK,
    BoundedArchiveIterator,
    HeaderTooLong,
    LineReader,
    ResponseHeadersLoader,
    gzip_member_end,
    read_http_payload,
)
from curate.schema import NOTE_REASON

DEFAULT_MAX_RECORD_BYTES = 16 * 2**20

# Content types that are certainly not HTML: dropped by header without reading the payload.
# Anything else (missing, text/plain, octet-stream...) is sniffed by the extraction step.
AMBIGUOUS_TYPES = ("", "text/plain", "application/octet-stream", "text/xml", "application/xml", "unknown")

# Exceptions warcio and the decompressors raise on damaged input. warcio's header parser also fails with
# AttributeError/TypeError on some garbage (e.g. a WARC header block cut before WARC-Target-URI).
READ_ERRORS: tuple[type[Exception], ...] = (
    ArchiveLoadFailed,
    EOFError,
    *INFLATE_ERRORS,
    OSError,
    ValueError,
    UnicodeDecodeError,
    IndexError,
    AttributeError,
    TypeError,
)
# Errors of the byte stream itself (a cut-off or corrupt gzip stream): reading cannot go on past them.
STREAM_ERRORS: tuple[type[Exception], ...] = (EOFError, *INFLATE_ERRORS, OSError)
GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class RecordRow:
    """One row of the WARC_RECORDS schema plus its drop decision."""

    doc_id: str | None
    warc_path: str
    warc_record_offset: int | None
    warc_record_length: int | None
    warc_record_type: str | None
    warc_date: datetime | None = None
    url: str | None = None
    http_status: int | None = None
    content_type: str | None = None
    http_charset: str | None = None
    payload: bytes | None = None
    drop_reason: str | None = None
    drop_detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__


def make_doc_id(record_id: str | None, warc_path: str, offset: int | None) -> str:
    """Stable across runs and machines: the record id plus the file's base name and the record offset."""
    key = f"{record_id or ''}|{os.path.basename(warc_path)}|{offset}"
    return hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:20]


def parse_warc_date(value: str | None) -> datetime | None:
    if not value:
        return None
    text = value.strip()
    try:
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        if len(text) == 14 and text.isdigit():  # WARC/0.17 and ARC style: 20080430204825
            return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        parsed = datetime.fromisoformat(text)
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except ValueError:
        return None


def split_content_type(header: str | None) -> tuple[str, str | None]:
    """`text/html; charset=GBK` -> ("text/html", "gbk")."""
    if not header:
        return "", None
    parts = header.split(";")
    mime = parts[0].strip().lower()
    charset = None
    for part in parts[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip("\"'").lower() or None
    return mime, charset


def _open(path: str) -> BinaryIO:
    """Local, object-store and HTTP files are streamed in bounded reads (curate.io.fs.open_input)."""
    return fs.open_input(path)


class WarcFileReader:
    """Iterates the rows of one WARC file (local path, or bytes already fetched by Spark)."""

    def __init__(self, warc_path: str, *, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES, data: bytes | None = None):
        self.warc_path = warc_path
        self.max_record_bytes = max_record_bytes
        self.data = data
        self.problems: list[tuple[str, str]] = []
        self._invalid_dates: dict[str, tuple[int, str]] = {}  # doc_id -> (offset, the WARC-Date as written)

    def _stream(self) -> BinaryIO:
        return io.BytesIO(self.data) if self.data is not None else _open(self.warc_path)

    def rows(self) -> Iterator[RecordRow]:
        self._invalid_dates = {}
        yielded: set[str] = set()
        for row in self._rows():
            yielded.add(str(row.doc_id))
            yield row
        invalid = sorted(value for doc_id, value in self._invalid_dates.items() if doc_id in yielded)
        if invalid:
            offset, written = invalid[0]
            yield self._file_problem(
                NOTE_REASON,
                offset,
                f"invalid_warc_date: {len(invalid)} records have a WARC-Date that is not a date (stored as null), "
                f"the first at offset {offset}: {written[:60]!r}",
                kind="invalid_warc_date",
            )

    def _rows(self) -> Iterator[RecordRow]:
        try:
            with self._stream() as probe:
                magic = probe.read(2)
        except OSError as exc:
            yield self._file_problem("unreadable_file", 0, f"cannot open: {exc}")
            return
        if magic == GZIP_MAGIC or self.warc_path.endswith((".arc", ".arc.gz")):
            yield from self._rows_from_members()
            return
        # Uncompressed WARC: read with our own framing, which also takes the ClueWeb dialect.
        with self._stream() as stream:
            yield from self._rows_from_text(stream, skip=0)

    def _rows_from_members(self) -> Iterator[RecordRow]:
        """Per-record gzip (Common Crawl's form) through warcio: offsets are those of the gzip members."""
        emitted = 0
        last_end = 0
        start = 0
        last_row: RecordRow | None = None
        member_open = False
        while True:
            with self._stream_at(start) as stream:
                iterator = BoundedArchiveIterator(stream, check_digests=False)
                try:
                    for record in iterator:
                        if (
                            emitted == 0
                            and record.format != "warc"
                            and not self.warc_path.endswith((".arc", ".arc.gz"))
                        ):
                            # warcio falls back to ARC for anything that is not WARC, and ARC's one-line header
                            # matches almost any text: a stray HTML or log file would become phantom records.
                            yield self._file_problem("unreadable_file", 0, "not a WARC file (no WARC/ version line)")
                            return
                        row = self._row(record, iterator)
                        member_open = _gzip_member_open(iterator)
                        if emitted == 0 and _member_holds_more(iterator):
                            # The first gzip member holds more than one record: the whole file is one member
                            # (browsertrix, ClueWeb09), which warcio does not read past its first record.
                            yield from self._rows_from_single_member()
                            return
                        last_end = (row.warc_record_offset or 0) + (row.warc_record_length or 0)
                        emitted += 1
                        last_row = row
                        yield row
                except HeaderTooLong as exc:
                    # The rest of this record's gzip member is skipped unread; warcio resumes at the next one.
                    bad_at = iterator.offset
                    with self._stream_at(bad_at) as member:
                        end = gzip_member_end(member, bad_at)
                    if emitted == 0 and end is not None and end == self._size():
                        # The whole file is that one member: the text framing skips just the bad record.
                        yield from self._rows_from_single_member()
                        return
                    last_row = self._bad_header(bad_at, exc)
                    emitted += 1
                    yield last_row
                    if end is None:
                        detail = f"gzip member at offset {bad_at} is cut off or corrupt"
                        yield self._file_problem("truncated_record", bad_at, detail)
                        return
                    start = last_end = end
                    member_open = False
                    continue
                except ArchiveLoadFailed as exc:
                    if member_open or "single gzip" in str(exc) or "beyond single record" in str(exc):
                        yield from self._rows_from_single_member(skip=emitted)
                        return
                    reason = "unreadable_file" if emitted == 0 else "truncated_record"
                    yield self._file_problem(reason, last_end, _one_line(exc))
                    return
                except READ_ERRORS as exc:
                    reason = "unreadable_file" if emitted == 0 else "truncated_record"
                    yield self._file_problem(reason, last_end, _one_line(exc))
                    return
            break
        if emitted == 0:
            yield self._file_problem("empty_file", 0, "no WARC records")
            return
        if member_open and last_row is not None and last_row.drop_reason != "truncated_record":
            # The last record was whole but its gzip member failed after it (e.g. a bad CRC): warcio then
            # reads nothing more, so whatever followed in the file is lost and must be named.
            offset = last_row.warc_record_offset or 0
            yield self._file_problem("truncated_record", offset, f"gzip member at offset {offset} is corrupt")
            return
        size = self._size()
        if size is not None and last_end < size and _has_content_after(self._stream(), last_end):
            # warcio stops quietly at bytes it cannot parse as a record: a cut-off or garbage tail.
            yield self._file_problem("truncated_record", last_end, f"{size - last_end} unparsed bytes at end of file")

    def _size(self) -> int | None:
        if self.data is not None:
            return len(self.data)
        return fs.file_size(self.warc_path)

    def _stream_at(self, offset: int) -> BinaryIO:
        """The input positioned at `offset`; a stream that cannot seek (HTTP) is read up to there."""
        stream = self._stream()
        if stream.seekable():
            stream.seek(offset)
            return stream
        while offset > 0 and (skipped := len(stream.read(min(offset, CHUNK)))):
            offset -= skipped
        return stream

    def _rows_from_single_member(self, skip: int = 0) -> Iterator[RecordRow]:
        yield self._file_problem(
            NOTE_REASON, 0, "single_gzip_member: whole file is one gzip member; offsets are in the decompressed stream"
        )
        with self._stream() as raw, gzip.GzipFile(fileobj=raw) as unzipped:
            yield from self._rows_from_text(cast(BinaryIO, unzipped), skip=skip)

    def _rows_from_text(self, stream: BinaryIO, skip: int) -> Iterator[RecordRow]:
        """Records of an uncompressed WARC stream, after the first `skip`. Tolerant of the ClueWeb09 dialect of
        WARC/0.18 (and of 0.17): header lines ending in a bare LF, and a block whose Content-Length runs
        right up to the next `WARC/` line with no blank line between. A record whose headers do not parse is
        a problem row, and reading resumes at the next line that starts with `WARC/`."""
        reader = LineReader(stream)
        loader = ResponseHeadersLoader(verify_http=False, arc2warc=False)
        seen = 0
        pending: tuple[int, bytes] | None = None
        start = 0
        try:
            while True:
                pending = pending or _next_nonblank_line(reader)
                if pending is None:
                    break
                (start, status_line), pending = pending, None
                if not status_line.startswith(b"WARC/"):
                    if seen == 0 and skip == 0:
                        yield self._file_problem("unreadable_file", start, "not a WARC file (no WARC/ version line)")
                        return
                    pending = _next_version_line(reader)
                    skipped = (pending[0] if pending else reader.tell()) - start
                    yield self._file_problem("truncated_record", start, f"{skipped} bytes that are not a WARC record")
                    continue
                try:
                    record = loader.parse_record_stream(reader, status_line, known_format="warc")
                except HeaderTooLong as exc:
                    seen += 1
                    if seen > skip:
                        yield self._bad_header(start, exc)
                    pending = _next_version_line(reader)
                    continue
                except STREAM_ERRORS:
                    raise
                except READ_ERRORS as exc:
                    pending = _next_version_line(reader)
                    yield self._file_problem(
                        "truncated_record", start, f"record headers do not parse: {_one_line(exc)}"
                    )
                    continue
                if _repeated_record_headers(record.rec_headers):
                    # A lost blank line runs two records' headers together: the second record is inside.
                    pending = _next_version_line(reader)
                    detail = "two records' WARC headers run together (a header block lost its end)"
                    yield self._file_problem("truncated_record", start, detail)
                    continue
                if _int(record.rec_headers.get_header("Content-Length")) is None:
                    pending = _next_version_line(reader)
                    yield self._file_problem("truncated_record", start, "WARC header block without a Content-Length")
                    continue
                seen += 1
                row = self._row(record, _RecordSpan(reader, record, start))
                if seen > skip:
                    yield row
        except STREAM_ERRORS as exc:
            # A decompression error or a cut-off gzip stream: nothing after this point can be read.
            yield self._file_problem("truncated_record", start, _one_line(exc))
            return
        if seen == 0 and skip == 0:
            yield self._file_problem("empty_file", 0, "no WARC records")

    def _bad_header(self, offset: int, exc: HeaderTooLong) -> RecordRow:
        return RecordRow(
            doc_id=make_doc_id(None, self.warc_path, offset),
            warc_path=self.warc_path,
            warc_record_offset=offset,
            warc_record_length=None,
            warc_record_type=None,
            drop_reason="bad_header",
            drop_detail=f"{exc}; the record was skipped unread",
        )

    def _row(self, record: Any, iterator: ArchiveIterator | _RecordSpan) -> RecordRow:
        headers = record.rec_headers
        record_type = (record.rec_type or "").lower()
        url = headers.get_header("WARC-Target-URI")
        content_length = _int(headers.get_header("Content-Length"))
        row = RecordRow(
            doc_id=None,
            warc_path=self.warc_path,
            warc_record_offset=None,
            warc_record_length=None,
            warc_record_type=record_type,
            warc_date=parse_warc_date(headers.get_header("WARC-Date")),
            url=url,
        )
        written_date = headers.get_header("WARC-Date")
        if record_type != "response":
            row.drop_reason = "not_response"
            row.drop_detail = record_type or "untyped"
        elif record.http_headers is None:
            row.drop_reason = "not_response"
            row.drop_detail = "no HTTP headers (e.g. dns: record)"
        else:
            row.http_status = _int(record.http_headers.get_statuscode())
            mime, charset = split_content_type(record.http_headers.get_header("Content-Type"))
            row.content_type, row.http_charset = mime, charset
            if row.http_status != 200:
                row.drop_reason = "http_status"
                row.drop_detail = str(row.http_status)
            elif content_length is not None and content_length > self.max_record_bytes:
                row.drop_reason = "too_large"
                row.drop_detail = f"{content_length} bytes > {self.max_record_bytes}"
            elif mime and not mime.startswith(HTML_TYPES) and mime not in AMBIGUOUS_TYPES:
                row.drop_reason = "non_html"
                row.drop_detail = mime[:100]
            else:
                row.payload, row.drop_reason, row.drop_detail = read_http_payload(record, self.max_record_bytes)
        # Offsets are known once the record has been consumed.
        row.warc_record_offset = iterator.get_record_offset()
        row.warc_record_length = iterator.get_record_length()
        # warcio ends a record quietly where the input ends or a gzip member fails to decompress (it only
        # prints the zlib error): the block is then shorter than its Content-Length.
        missing = getattr(record.raw_stream, "limit", 0)
        if isinstance(missing, int) and missing > 0:
            row.drop_reason = "truncated_record"
            row.drop_detail = f"record block ends {missing} bytes short of its Content-Length (cut off or corrupt)"
            row.payload = None
        elif content_length is None and str(getattr(record, "format", "")).startswith("warc"):
            # Every WARC record has a Content-Length; without it the header block itself was cut off.
            row.drop_reason = "truncated_record"
            row.drop_detail = "WARC header block without Content-Length (cut off or corrupt)"
            row.payload = None
        row.doc_id = make_doc_id(headers.get_header("WARC-Record-ID"), self.warc_path, row.warc_record_offset)
        if written_date and row.warc_date is None:
            self._invalid_dates[row.doc_id] = (row.warc_record_offset or 0, written_date)
        return row

    def _file_problem(self, reason: str, offset: int, detail: str, kind: str = "") -> RecordRow:
        """`kind` tells apart two problems of one reason at one offset (two notes on the first record)."""
        self.problems.append((reason, detail))
        return RecordRow(
            doc_id=make_doc_id(f"problem:{reason}{':' if kind else ''}{kind}", self.warc_path, offset),
            warc_path=self.warc_path,
            warc_record_offset=offset,
            warc_record_length=None,
            warc_record_type=None,
            drop_reason=reason,
            drop_detail=detail[:500],
        )


class _RecordSpan:
    """Offset and length of a record read by `_rows_from_text`, in the same terms as warcio's iterator."""

    def __init__(self, reader: LineReader, record: Any, start: int) -> None:
        self._reader, self._record, self._start = reader, record, start
        self._end: int | None = None

    def get_record_offset(self) -> int:
        if self._end is None:
            while self._record.raw_stream.read(CHUNK):
                pass
            self._end = self._reader.tell()
        return self._start

    def get_record_length(self) -> int:
        self.get_record_offset()
        return (self._end or self._start) - self._start


def _repeated_record_headers(headers: Any) -> bool:
    names = Counter(name.strip().lower() for name, _ in headers.headers)
    return any(names[name] > 1 for name in ("warc-type", "warc-record-id", "content-length"))


def _next_nonblank_line(reader: LineReader) -> tuple[int, bytes] | None:
    while True:
        offset, head = reader.line_head()
        if not head:
            return None
        if head.strip():
            return offset, head


def _next_version_line(reader: LineReader) -> tuple[int, bytes] | None:
    """Skip to the next line that starts a WARC record (`WARC/<digit>`)."""
    while True:
        offset, head = reader.line_head()
        if not head:
            return None
        if head.startswith(b"WARC/") and head[5:6].isdigit():
            return offset, head


def _member_holds_more(iterator: ArchiveIterator) -> bool:
    """True if the gzip member of the record just read goes on after it (warcio has read the next line of
    the same member, or the member has not ended)."""
    if getattr(iterator.reader, "decompressor", None) is None:
        return False
    return bool(iterator.next_line) or _gzip_member_open(iterator)


def _gzip_member_open(iterator: ArchiveIterator) -> bool:
    """True if the current gzip member has not reached its end after a whole record was read."""
    decompressor = getattr(iterator.reader, "decompressor", None)
    return decompressor is not None and not getattr(decompressor, "eof", True)


def _has_content_after(stream: BinaryIO, offset: int) -> bool:
    """True if non-padding bytes follow `offset` (some writers pad files with zeros or newlines)."""
    with stream:
        stream.seek(offset)
        tail = stream.read(4096)
    return bool(tail.strip(b"\x00\r\n \t"))


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]
