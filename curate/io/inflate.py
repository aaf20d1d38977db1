"""DEFLATE inflaters for everything curate un-gzips: WARC members, HTTP content encodings, member scans.

Inflating is the largest single cost of reading a WARC (zlib took two thirds of warcio's read time on the
shared page mix). ISA-L's inflater (python-isal) is a drop-in `decompressobj` with the same streaming
contract (`max_length`, `unconsumed_tail`, `unused_data`, `eof`) at about 2.3x zlib's speed on these files,
so every inflater comes from here; its errors are not `zlib.error`, hence `INFLATE_ERRORS`.
"""

from __future__ import annotations

import zlib
from typing import Any, cast

from isal import isal_zlib

GZIP_WBITS = 16 + zlib.MAX_WBITS
ZLIB_WBITS = zlib.MAX_WBITS
RAW_DEFLATE_WBITS = -zlib.MAX_WBITS

# isal's stubs declare its error as an instance; at run time it is the class IsalError.
INFLATE_ERRORS: tuple[type[Exception], ...] = (zlib.error, cast(type[Exception], isal_zlib.error))


def inflater(wbits: int = GZIP_WBITS) -> Any:
    """A streaming decompressor for `wbits` (gzip by default), with zlib's `decompressobj` interface."""
    return isal_zlib.decompressobj(wbits)


def gzip_inflater() -> Any:
    return inflater(GZIP_WBITS)
