"""No transparent huge pages in curate's processes.

Arrow's allocator, mimalloc 3, asks the kernel for transparent huge pages on the memory it reserves. The first
touch of a huge page makes the kernel find and zero all 2 MiB of it, and the read step's batches keep reaching
fresh ones: zeroing was 12 % of an ingest's main process (perf), and a `curate ingest --local-runner` of
2,439 real pages took 6.99 CPU s with huge pages against 6.71 s without (median of 4 alternating pairs; every
pair gained). mimalloc's `allow_thp` option off turns them off for the whole process (`prctl`), which its
children inherit: the extraction guard's child, and in a local Spark session the JVM and its Python workers.
"""

from __future__ import annotations

import os

MIMALLOC_HUGE_PAGES = "MIMALLOC_ALLOW_THP"


def without_transparent_huge_pages() -> None:
    """Takes effect only before pyarrow is first imported (mimalloc reads its options when the library loads);
    a value already set in the environment is kept."""
    os.environ.setdefault(MIMALLOC_HUGE_PAGES, "0")
