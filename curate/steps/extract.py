"""ExtractStep: WARC record rows in, DOCUMENTS rows out (HTML sniffed, decoded, main text with math).

Every record is contained: an exception while decoding or extracting drops that record as `extract_error`
(the detail names the exception), and by default the work runs in a supervised child process
(`curate.runners.guard`), so a crash in native code or a page that never finishes drops that record as
`extract_crash` or `extract_timeout` and the rest of the batch goes on.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from curate.extraction.record import Outcome, extract_record
from curate.runners.guard import Failure, RecordGuard
from curate.schema import DOCUMENTS, DROP_DETAIL, DROP_REASON, with_drop_fields
from curate.step import Step, worker_cached

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

# No real page of the shared data takes more than a fraction of a second; a minute is a page that never ends.
DEFAULT_RECORD_TIMEOUT_S = 60.0
# The extraction child's address-space cap: a page that needs more is dropped, not the worker's host.
DEFAULT_WORKER_MEMORY_MB = 4096


class ExtractStep(Step):
    name = "extract_math_html_v3"  # v3: `too_deep` drops
    error_reason = "extract_error"

    def __init__(
        self,
        min_chars: int = 1,
        *,
        isolated: bool = True,
        record_timeout_s: float = DEFAULT_RECORD_TIMEOUT_S,
        worker_memory_mb: int = DEFAULT_WORKER_MEMORY_MB,
    ) -> None:
        super().__init__()
        self.min_chars = min_chars
        self.isolated = isolated
        self.record_timeout_s = record_timeout_s
        self.worker_memory_mb = worker_memory_mb

    def config(self) -> dict[str, Any]:
        # Isolation and its limits decide only which hostile records are dropped, but they do decide that.
        return {
            "min_chars": self.min_chars,
            "isolated": self.isolated,
            "record_timeout_s": self.record_timeout_s,
            "worker_memory_mb": self.worker_memory_mb,
        }

    def output_schema(self, input_schema: pa.Schema) -> pa.Schema:
        return DOCUMENTS

    def _guard(self) -> RecordGuard:
        key = f"extract-guard:{self.record_timeout_s}:{self.worker_memory_mb}"
        return worker_cached(
            key,
            lambda: RecordGuard(
                "curate.extraction.record:extract_record",
                kind="extract",
                timeout_s=self.record_timeout_s,
                memory_mb=self.worker_memory_mb,
            ),
        )

    def _extract(
        self, payload: bytes | memoryview | None, http_charset: str | None, content_type: str | None
    ) -> Outcome:
        if not self.isolated:
            page = payload.tobytes() if isinstance(payload, memoryview) else payload
            return extract_record(page, http_charset, content_type, self.min_chars)
        result = self._guard().call(payload, http_charset, content_type, self.min_chars)
        if isinstance(result, Failure):
            return None, None, None, result.reason, result.detail
        outcome: Outcome = result
        return outcome

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        columns: dict[str, list[Any]] = {name: batch.column(name).to_pylist() for name in _PASSTHROUGH}
        payloads = _payload_views(batch.column("payload")) if self.isolated else batch.column("payload").to_pylist()
        http_charsets = batch.column("http_charset").to_pylist()
        out: dict[str, list[Any]] = {name: [] for name in (*DOCUMENTS.names, DROP_REASON, DROP_DETAIL)}
        for i, payload in enumerate(payloads):
            text, charset, has_math, reason, detail = self._extract(
                payload, http_charsets[i], columns["content_type"][i]
            )
            for name in _PASSTHROUGH:
                out[name].append(columns[name][i])
            out["charset"].append(charset)
            out["language"].append(None)
            out["language_score"].append(None)
            out["text"].append(text if reason is None else None)
            out["n_chars"].append(len(text) if text is not None and reason is None else None)
            out["has_math_markup"].append(has_math)
            out[DROP_REASON].append(reason)
            out[DROP_DETAIL].append(detail)
        return pa.RecordBatch.from_pydict(out, schema=with_drop_fields(DOCUMENTS))


def _payload_views(payloads: pa.Array) -> list[memoryview | None]:
    """Each page as a view of the Arrow buffer that holds it: the guard sends it to its child from there, so the
    batch's pages (100 pages of ~150 KB on the real mix) are not first copied into Python bytes objects."""
    return [memoryview(page.as_buffer()) if page.is_valid else None for page in payloads]
