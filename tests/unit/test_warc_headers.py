"""The header block parser gives what warcio's line-by-line parse gives, and leaves the reader where it would.

Each case is parsed twice from the same gzip bytes through the same reader class: once by warcio's own
`StatusAndHeadersParser.parse`, once by `BlockHeadersParser`. Small inflate blocks cut header blocks at
buffer ends, so both the one-piece path (with its top-up) and the fallback run.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from warcio.limitreader import LimitReader
from warcio.recordloader import ArcWarcRecordLoader
from warcio.statusandheaders import StatusAndHeadersParser

from curate.io.warc import WarcFileReader
from curate.io.warc_headers import BlockHeadersParser
from curate.io.warc_limits import BoundedGzipReader


def mostly(common: bytes, *odd: bytes) -> st.SearchStrategy[bytes]:
    """`common` most of the time (Hypothesis favours the ends of a list: `common` is at both), each oddity sometimes."""
    return st.sampled_from([common, *odd, *[common] * 8 * len(odd)])


# Mostly well-formed blocks, which take the one-piece path, with every oddity among them.
STATUS_LINES = mostly(b"WARC/1.0", b"HTTP/1.1 200 OK", b"WARC/0.17", b"GET / HTTP/1.1", b"", b"  ", b"x", b"HTTP/1.0")
ENDINGS = mostly(b"\r\n", b"\n", b" \r\n", b"\r\r\n", b"\t\n")
NAMES = mostly(b"Content-Type", b"WARC-Type", b"X", b"", b" cont", b"\tcont", b"no colon")
SEPARATORS = mostly(b": ", b":", b" : ", b"")
CHARACTERS = mostly(
    b"a",
    *(b"Z", b":", b" ", b"\t", b"\r", b"-", b"1", b"\xc3\xa9", b"\xc2\x85", b"\xc2\xa0", b"\x0c"),
    *(b"\xe9", b"\x85"),  # not UTF-8: warcio decodes such a line as ISO-8859-1
)
BLANK_LINES = mostly(b"\r\n", b"\n", b" \r\n", b"")
BODIES = mostly(b"<html>\r\n\r\nbody", b"", b"\r\n", b"more: header\r\n\r\n")


@st.composite
def header_blocks(draw: Any) -> bytes:
    lines = [draw(STATUS_LINES) + draw(ENDINGS)]
    for _ in range(draw(st.integers(0, 12))):
        value = b"".join(draw(st.lists(CHARACTERS, max_size=20)))
        lines.append(draw(NAMES) + draw(SEPARATORS) + value + draw(ENDINGS))
    return b"".join(lines) + draw(BLANK_LINES) + draw(BODIES)


def _parse(parser_class: type, data: bytes, block_size: int, limit: int | None, given_status: bool) -> Any:
    reader = BoundedGzipReader(io.BytesIO(gzip.compress(data)), block_size=block_size)
    stream: Any = LimitReader(reader, limit) if limit is not None else reader
    statuses = ArcWarcRecordLoader.WARC_TYPES + ArcWarcRecordLoader.HTTP_TYPES
    parser = parser_class(statuses, verify=not given_status)
    status = stream.readline() if given_status else None
    try:
        headers = parser.parse(stream, status)
        outcome: Any = (headers.statusline, headers.protocol, headers.headers, headers.total_len)
    except Exception as exc:  # warcio's own errors (EOFError, a rejected status line) must match too
        outcome = (type(exc).__name__, str(exc))
    # The reader's own tell() counts the bytes inflated so far, which depends on how its buffer was filled.
    return outcome, stream.tell() if limit is not None else None, stream.read()


@given(
    data=header_blocks(),
    block_size=st.sampled_from([1, 7, 40, 300, 16384, 16384, 16384]),
    limit=st.one_of(st.none(), st.none(), st.integers(0, 600)),
    given_status=st.booleans(),
)
# An empty value continued on the next line keeps the continuation's leading space, as warcio joins them.
@example(data=b"WARC/1.0\r\nX:\r\n  more\r\n\r\n", block_size=16384, limit=None, given_status=False)
@example(data=b"HTTP/1.1 200 OK\n\n<html>\r\n\r\n", block_size=16384, limit=None, given_status=True)
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
def test_block_parse_equals_warcio_line_by_line(data: bytes, block_size: int, limit: int | None, given_status: bool):
    assert _parse(BlockHeadersParser, data, block_size, limit, given_status) == _parse(
        StatusAndHeadersParser, data, block_size, limit, given_status
    )


def _rows_both_ways(read: Callable[[], list[dict[str, Any]]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`read()` with the block parser, then with warcio's own parse in its place."""
    fast = read()
    original = BlockHeadersParser.parse
    BlockHeadersParser.parse = StatusAndHeadersParser.parse  # type: ignore[method-assign]
    try:
        return fast, read()
    finally:
        BlockHeadersParser.parse = original  # type: ignore[method-assign]


def test_real_warc_files_read_the_same_through_either_parser(shared_data: Path) -> None:
    paths = sorted([*(shared_data / "cc-warc").rglob("*.gz"), *(shared_data / "web-warc").rglob("*.warc.gz")])
    assert len(paths) >= 6
    fast, slow = _rows_both_ways(lambda: [row.as_dict() for path in paths for row in WarcFileReader(str(path)).rows()])
    assert fast == slow


def _members(path: Path) -> list[bytes]:
    """The uncompressed gzip members of a per-record gzip WARC."""
    data, members = path.read_bytes(), []
    while data:
        member = zlib.decompressobj(16 + zlib.MAX_WBITS)
        members.append(member.decompress(data))
        data = member.unused_data
    return members


@given(
    member=st.integers(0, 11),
    at=st.integers(0, 1200),
    cut=st.integers(0, 6),
    inserted=st.lists(st.sampled_from([b"\r\n", b"\n", b"\r", b" ", b"\t", b":", b"\xe9", b"\x00", b"x"]), max_size=4),
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
def test_a_mutated_common_crawl_file_reads_the_same_through_either_parser(
    shared_data: Path, member: int, at: int, cut: int, inserted: list[bytes]
) -> None:
    """Bytes cut or inserted in the header blocks of a real Common Crawl file: every row equals warcio's."""
    members = _members(shared_data / "cc-warc" / "resiliparse" / "warcfile.warc.gz")
    target = members[member]
    members[member] = target[:at] + b"".join(inserted) + target[at + cut :]
    data = b"".join(gzip.compress(body, compresslevel=1, mtime=0) for body in members)

    fast, slow = _rows_both_ways(lambda: [row.as_dict() for row in WarcFileReader("mutated.warc.gz", data=data).rows()])
    assert fast == slow
