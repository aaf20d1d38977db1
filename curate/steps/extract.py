"""ExtractStep: WARC record rows in, DOCUMENTS rows out (HTML sniffed, decoded, main text with math).

Every record is contained: an exception while decoding or extracting drops that record as `extract_error`
(the detail names the exception), and by default the work runs in a supervised child process
(`curate.runners.guard`), so a crash in native code or a page that never finishes drops that record as
`extract_crash` or `extract_timeout` and the rest of the batch goes on.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from curate.extraction.record import Outcome, extract_record
from curate.runners.guard import Failure, Raised, RecordGuard
from curate.schema import DOCUMENTS, DROP_DETAIL, DROP_REASON, with_drop_fields
from curate.step import Step, conform, worker_cached

_PASSTHROUGH = (
    "doc_id",
    "url",
    "host",
    "registered_domain",
    "warc_path",
    "warc_record_offset",
    "warc_record_length",
    "warc_date",
    "content_type",
)

# Columns this step makes; the others of DOCUMENTS are its input's, or the language columns a later step fills.
_EXTRACTED = ("charset", "text", "n_chars", "has_math_markup", DROP_REASON, DROP_DETAIL)

# A record's extraction may take DEFAULT_RECORD_TIMEOUT_S plus DEFAULT_RECORD_TIMEOUT_S_PER_MB for each MiB of
# its page. No real page of the shared data takes 0.05 s; the largest (16 MiB) would take a few. Pages that
# make the parser quadratic run for most of a minute: 100,000 attributes on one element (870 KB) took 38 s,
# 100,000 `<option><optgroup>` (1.7 MB) 58 s, and are dropped after 14 s and 19 s. So is deep nesting over much
# text, which main content pays for depth times text (1 MiB under 4,000 divs: 13 s, dropped after 15 s).
DEFAULT_RECORD_TIMEOUT_S = 10.0
DEFAULT_RECORD_TIMEOUT_S_PER_MB = 5.0
# The extraction child's address-space cap: a page that needs more is dropped, not the worker's host.
DEFAULT_WORKER_MEMORY_MB = 4096


class ExtractStep(Step):
    name = "extract_math_html_v4"  # v4: `too_many_elements`, and `too_deep` by tags times depth
    error_reason = "extract_error"

    def __init__(
        self,
        min_chars: int = 1,
        *,
        isolated: bool = True,
        record_timeout_s: float = DEFAULT_RECORD_TIMEOUT_S,
        record_timeout_s_per_mb: float = DEFAULT_RECORD_TIMEOUT_S_PER_MB,
        worker_memory_mb: int = DEFAULT_WORKER_MEMORY_MB,
    ) -> None:
        super().__init__()
        self.min_chars = min_chars
        self.isolated = isolated
        self.record_timeout_s = record_timeout_s
        self.record_timeout_s_per_mb = record_timeout_s_per_mb
        self.worker_memory_mb = worker_memory_mb

    def config(self) -> dict[str, Any]:
        # Isolation and its limits decide only which hostile records are dropped, but they do decide that.
        return {
            "min_chars": self.min_chars,
            "isolated": self.isolated,
            "record_timeout_s": self.record_timeout_s,
            "record_timeout_s_per_mb": self.record_timeout_s_per_mb,
            "worker_memory_mb": self.worker_memory_mb,
        }

    def output_schema(self, input_schema: pa.Schema) -> pa.Schema:
        return DOCUMENTS

    def _guard(self) -> RecordGuard:
        key = f"extract-guard:{self.record_timeout_s}:{self.record_timeout_s_per_mb}:{self.worker_memory_mb}"
        return worker_cached(
            key,
            lambda: RecordGuard(
                "curate.extraction.record:extract_record",
                kind="extract",
                timeout_s=self.record_timeout_s,
                timeout_s_per_mb=self.record_timeout_s_per_mb,
                memory_mb=self.worker_memory_mb,
            ),
        )

    def _outcomes(
        self, payloads: list[Any], http_charsets: list[str | None], content_types: list[str | None]
    ) -> list[Outcome]:
        """Each record's extraction: in this process, or the whole batch through the guard's child at once."""
        requests = [
            (payload, http_charset, content_type, self.min_chars, _tag_opens(payload))
            for payload, http_charset, content_type in zip(payloads, http_charsets, content_types, strict=True)
        ]
        if not self.isolated:
            return [extract_record(*request) for request in requests]
        outcomes: list[Outcome] = []
        for result in self._guard().call_many(requests):
            if isinstance(result, Raised):
                raise result.exception  # `process_contained` runs the batch again row by row
            outcomes.append((None, None, None, result.reason, result.detail) if isinstance(result, Failure) else result)
        return outcomes

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        payloads = _payload_views(batch.column("payload")) if self.isolated else batch.column("payload").to_pylist()
        outcomes = self._outcomes(
            payloads, batch.column("http_charset").to_pylist(), batch.column("content_type").to_pylist()
        )
        made: dict[str, list[Any]] = {name: [] for name in _EXTRACTED}
        for text, charset, has_math, reason, detail in outcomes:
            kept = text if reason is None else None
            made["charset"].append(charset)
            made["text"].append(kept)
            made["n_chars"].append(None if kept is None else len(kept))
            made["has_math_markup"].append(has_math)
            made[DROP_REASON].append(reason)
            made[DROP_DETAIL].append(detail)
        # One output row per input row: the passed-through columns are the input's own arrays, not copies, and
        # the language columns, which a later step fills, come out null.
        schema = with_drop_fields(DOCUMENTS)
        columns = {name: batch.column(name) for name in _PASSTHROUGH}
        columns.update({name: pa.array(values, schema.field(name).type) for name, values in made.items()})
        return conform(pa.RecordBatch.from_pydict(columns), schema)


def _tag_opens(payload: bytes | memoryview | None) -> int | None:
    """The number of `<` bytes in the page, which decides whether extraction must measure its nesting depth.
    Counted here because this process has numpy: 0.023 ms on the real pages' mean of 150 KB, against 0.056 ms
    for the extraction child's own count (`utf8_tag_opens`)."""
    if payload is None:
        return None
    return int(np.count_nonzero(np.frombuffer(payload, dtype=np.uint8) == ord("<")))


def _payload_views(payloads: pa.Array) -> list[memoryview | None]:
    """Each page as a view of the Arrow buffer that holds it: the guard sends it to its child from there, so the
    batch's pages (100 pages of ~150 KB on the real mix) are not first copied into Python bytes objects. They
    are cut from the array's offsets and data buffers, without an Arrow scalar per page."""
    if len(payloads) == 0:
        return []
    _, offsets_buffer, data_buffer = payloads.buffers()
    raw_offsets = memoryview(offsets_buffer)
    all_offsets = raw_offsets.cast("q") if pa.types.is_large_binary(payloads.type) else raw_offsets.cast("i")
    offsets = all_offsets[payloads.offset : payloads.offset + len(payloads) + 1]
    data = memoryview(data_buffer if data_buffer is not None else b"")
    valid = payloads.is_valid().to_pylist() if payloads.null_count else [True] * len(payloads)
    return [data[offsets[i] : offsets[i + 1]] if valid[i] else None for i in range(len(payloads))]
