"""ExtractStep: WARC record rows in, DOCUMENTS rows out (HTML sniffed, decoded, main text with math)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from curate.io.warc import HTML_TYPES
from curate.schema import DOCUMENTS, DROP_DETAIL, DROP_REASON, with_drop_fields
from curate.step import Step
from curate.steps.decode import DecodeFailed, NotHtml, decode_html, sniff_html

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


class ExtractStep(Step):
    name = "extract_math_html_v1"

    def __init__(self, min_chars: int = 1) -> None:
        super().__init__()
        self.min_chars = min_chars

    def config(self) -> dict[str, Any]:
        return {"min_chars": self.min_chars}

    def output_schema(self, input_schema: pa.Schema) -> pa.Schema:
        return DOCUMENTS

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        from curate.steps.math_html import extract_main_text

        columns: dict[str, list[Any]] = {name: batch.column(name).to_pylist() for name in _PASSTHROUGH}
        payloads = batch.column("payload").to_pylist()
        http_charsets = batch.column("http_charset").to_pylist()
        out: dict[str, list[Any]] = {name: [] for name in (*DOCUMENTS.names, DROP_REASON, DROP_DETAIL)}
        for i, payload in enumerate(payloads):
            text, charset, has_math, reason, detail = None, None, None, None, None
            try:
                content_type = columns["content_type"][i] or ""
                sniff_html(payload or b"", declared_html=content_type.startswith(HTML_TYPES))
                html, charset = decode_html(payload, http_charsets[i])
                extracted = extract_main_text(html)
                text, has_math = extracted.text, extracted.has_math_markup
                if len(text.strip()) < self.min_chars:
                    reason, detail = "empty_text", f"{len(text.strip())} chars of main text"
            except NotHtml as exc:
                reason, detail = "non_html", str(exc)
            except DecodeFailed as exc:
                reason, detail = "decode_error", str(exc)
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
