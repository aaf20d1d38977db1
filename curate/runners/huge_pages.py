"""No transparent huge pages while the local runner ingests (its extract and URL-dedup stages).

Arrow's allocator, mimalloc 3, advises the kernel to back the memory it reserves with transparent huge pages.
The first touch of a huge page makes the kernel find and zero all 2 MiB of it, and the read step's batches keep
reaching fresh ones: zeroing was 12 % of an ingest's main process (perf), and a `curate ingest --local-runner`
of 2,439 real pages took 6.99 CPU s with huge pages against 6.71 s without (median of 4 alternating pairs;
every pair gained). The guard's child, started inside, inherits the setting. URL dedup, which reads the
extracted documents back and writes them again, gained too: the same command took 7.66 CPU s with it off there
as well, against 7.74 s with it off in extraction only (median of 6 alternating pairs, 5 of them gained).

Only there: fastText gains from huge pages where the kernel gives them to every process (THP `always`):
scoring with a 2 GB model took 3.7 s with them against 4.2 s without. So the setting is taken back when the
stage ends, and Spark's workers, which also score, keep the kernel's own. A user who sets mimalloc's own
`MIMALLOC_ALLOW_THP` decides for the whole process, and this changes nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

PR_SET_THP_DISABLE = 41
PR_GET_THP_DISABLE = 42


@contextmanager
def transparent_huge_pages_off() -> Iterator[None]:
    """Huge pages off for this process, and the processes it starts, until the block ends."""
    prctl = _prctl()
    if prctl is None or "MIMALLOC_ALLOW_THP" in os.environ or prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) != 0:
        yield  # not Linux, the user's choice, or already off (by the user, or by an enclosing block)
        return
    if prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0:
        yield
        return
    try:
        yield
    finally:
        prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0)


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None).prctl
    except (OSError, AttributeError):
        return None
    function.restype = ctypes.c_int
    function.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return function  # type: ignore[no-any-return]
