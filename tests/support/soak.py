"""The soak: every real HTML page of the shared data through the product's extraction, in one process,
shuffled, over and over. Used by `tests/unit/test_soak.py` (a few passes) and `benchmarks/soak.py` (20+).

A parser that leaves a stale node behind shows up here as an exception, a crash, or an output that differs
between two passes over the same page (the corruption depends on what ran before, hence the shuffling).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from curate.io.warc import WarcFileReader
from curate.steps.extract import Outcome, extract_record
from support.warcs import real_pages

# The per-record WARC inputs ingest reads: every response the reader hands to extraction.
WARC_GLOBS = ("cc-warc/*/*.warc.gz", "web-warc/*/*.warc.gz")


@dataclass(frozen=True, slots=True)
class HtmlInput:
    name: str  # the file under the shared data, with the record's offset for a WARC response
    payload: bytes
    http_charset: str | None
    content_type: str | None


def real_html_inputs(shared_data: Path) -> list[HtmlInput]:
    """Every real page: the ~800 files under `html/` and every response with a payload in the shared WARCs."""
    inputs = [
        HtmlInput(page.source.relative_to(shared_data).as_posix(), page.html, None, "text/html")
        for page in real_pages(shared_data)
    ]
    for pattern in WARC_GLOBS:
        for path in sorted(shared_data.glob(pattern)):
            for row in WarcFileReader(str(path)).rows():
                if row.payload is not None and row.drop_reason is None:
                    name = f"{path.relative_to(shared_data).as_posix()}@{row.warc_record_offset}"
                    inputs.append(HtmlInput(name, row.payload, row.http_charset, row.content_type))
    return inputs


def soak_pass(inputs: list[HtmlInput], seed: int, pass_index: int) -> Iterator[tuple[str, Outcome]]:
    """One pass in an order that depends on (seed, pass_index) only: (name, extraction outcome) per input."""
    order = list(range(len(inputs)))
    random.Random(f"{seed}:{pass_index}").shuffle(order)
    for index in order:
        item = inputs[index]
        yield item.name, extract_record(item.payload, item.http_charset, item.content_type, 1)
