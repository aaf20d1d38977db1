"""ReadWarcStep: WARC file paths in, one row per WARC record out (WARC_RECORDS schema)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa

from curate.io.warc import DEFAULT_MAX_RECORD_BYTES, WarcFileReader
from curate.schema import WARC_RECORDS, with_drop_fields
from curate.step import Step

# Bound a batch by rows and by payload bytes: one 16 MB page must not make a 1,000-row batch of them.
BATCH_ROWS = 100
BATCH_BYTES = 64 * 2**20


class ReadWarcStep(Step):
    name = "read_warc_v2"  # v2: bounded headers and decoding (bad_header), ClueWeb09 dialect

    def __init__(self, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> None:
        super().__init__()
        self.max_record_bytes = max_record_bytes

    def config(self) -> dict[str, Any]:
        return {"max_record_bytes": self.max_record_bytes}

    def output_schema(self, input_schema: pa.Schema) -> pa.Schema:
        return WARC_RECORDS

    def apply(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        schema = with_drop_fields(WARC_RECORDS)
        # Dropped records (request records, non-HTML types, damage) are batched apart from the kept ones, so
        # the runner passes each batch on whole instead of filtering it: filtering copies every payload.
        kept: list[dict[str, Any]] = []
        dropped: list[dict[str, Any]] = []
        size = 0
        for batch in batches:
            paths = batch.column("warc_path").to_pylist()
            contents = batch.column("content").to_pylist() if "content" in batch.schema.names else [None] * len(paths)
            for path, content in zip(paths, contents, strict=True):
                reader = WarcFileReader(path, max_record_bytes=self.max_record_bytes, data=content)
                for row in reader.rows():
                    if row.drop_reason is not None:
                        dropped.append(row.as_dict())
                        if len(dropped) >= BATCH_ROWS:
                            yield pa.RecordBatch.from_pylist(dropped, schema=schema)
                            dropped = []
                        continue
                    kept.append(row.as_dict())
                    size += len(row.payload or b"")
                    if len(kept) >= BATCH_ROWS or size >= BATCH_BYTES:
                        yield pa.RecordBatch.from_pylist(kept, schema=schema)
                        kept, size = [], 0
        for rows in (kept, dropped):
            if rows:
                yield pa.RecordBatch.from_pylist(rows, schema=schema)
