"""warcio's header parser, fed a whole header block at a time when the reader already holds it.

warcio's `StatusAndHeadersParser.parse` reads a header block line by line, decoding and stripping each line
in Python: on Common Crawl files that was a third of reading a record (about 0.1 ms a response record,
whose request, WARC and HTTP header blocks are three parses). Here the block through its terminating
empty line is taken from the reader's inflated buffer in one piece, decoded once and split once.

The result is warcio's own: the same `StatusAndHeaders` (status line, protocol, headers in order with
continuation lines joined, `total_len` counted as warcio counts it), and the reader left at the same place.
Wherever the one-piece reading could differ from warcio's line by line, it is not taken and warcio's
parse runs instead: a block not wholly in the buffer or past the record's length, bytes that are not
UTF-8 (warcio then decodes line by line as ISO-8859-1), an empty status line, a line inside the block
that is blank once stripped (where warcio ends the block early), or a status line warcio would reject
(its parse raises the same error). tests/unit/test_warc_headers.py holds both to the same output on
generated blocks.
"""

from __future__ import annotations

from typing import Any

from warcio.limitreader import LimitReader
from warcio.statusandheaders import StatusAndHeaders, StatusAndHeadersParser


class BlockHeadersParser(StatusAndHeadersParser):  # type: ignore[misc]
    """warcio's parser, taking the block in one piece from a reader that has `buffered_header_block(limit)`
    and `skip_header_block(size)` (`warc_limits.BoundedGzipReader`), directly or under warcio's LimitReader."""

    def parse(self, stream: Any, full_statusline: bytes | None = None) -> StatusAndHeaders:
        parsed = self._parse_buffered(stream, full_statusline)
        if parsed is None:
            return super().parse(stream, full_statusline)
        return parsed

    def _parse_buffered(self, stream: Any, full_statusline: bytes | None) -> StatusAndHeaders | None:
        bounded = stream if type(stream) is LimitReader else None
        source = bounded.stream if bounded is not None else stream
        if not hasattr(source, "buffered_header_block"):
            return None
        # A status line read by the caller (warcio reads it while skipping blank lines) counts in `total_len`.
        given = "" if full_statusline is None else self.decode_header(full_statusline)
        if full_statusline is not None and not given.rstrip():
            return None  # warcio reads nothing more
        block = source.buffered_header_block(bounded.limit if bounded is not None else None)
        if block is None:
            return None
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError:
            return None
        lines = text.split("\n")
        lines.pop()  # the block ends with its empty line's newline
        total_read = len(given) + len(text)
        status = given
        if full_statusline is None:
            status = lines.pop(0) if len(lines) > 1 else ""
        statusline = status.rstrip()
        if not statusline:
            return None
        if self.verify:
            protocol_status = self.split_prefix(statusline, self.statuslist)
            if not protocol_status:
                return None
        else:
            protocol_status = statusline.split(" ", 1)
        stripped = [line.rstrip() for line in lines]
        stripped.pop()  # the empty line that ends the block
        headers = []
        count = len(stripped)
        index = 0
        while index < count:
            line = stripped[index]
            if not line:
                return None
            index += 1
            name, colon, value = line.partition(":")
            value = value.lstrip()
            while index < count and stripped[index].startswith((" ", "\t")):
                value += stripped[index]
                index += 1
            if colon:
                headers.append((name.rstrip(" \t"), value))
        source.skip_header_block(len(block))
        if bounded is not None:
            bounded.limit -= len(block)
        return StatusAndHeaders(
            statusline=protocol_status[1].strip() if len(protocol_status) > 1 else "",
            headers=headers,
            protocol=protocol_status[0],
            total_len=total_read,
        )
