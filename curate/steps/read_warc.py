"""ReadWarcStep: WARC file paths in, one row per WARC record out (WARC_RECORDS schema)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import accumulate
from typing import Any

import pyarrow as pa

from curate.io.warc import DEFAULT_MAX_RECORD_BYTES, RecordRow, WarcFileReader
from curate.schema import WARC_RECORDS, with_drop_fields
from curate.step import Step

# Bound a batch by rows and by payload bytes: one 16 MB page must not make a 1,000-row batch of them.
BATCH_ROWS = 100
BATCH_BYTES = 64 * 2**20
# A binary column's offsets are int32: a batch whose payloads reach this goes through Arrow's own builder.
_MAX_JOINED_BYTES = 2**31 - 1


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
        kept: list[RecordRow] = []
        dropped: list[RecordRow] = []
        size = 0
        for batch in batches:
            paths = batch.column("warc_path").to_pylist()
            contents = batch.column("content").to_pylist() if "content" in batch.schema.names else [None] * len(paths)
            for path, content in zip(paths, contents, strict=True):
                reader = WarcFileReader(path, max_record_bytes=self.max_record_bytes, data=content)
                for row in reader.rows():
                    if row.drop_reason is not None:
                        dropped.append(row)
                        if len(dropped) >= BATCH_ROWS:
                            yield rows_to_batch(dropped, schema)
                            dropped = []
                        continue
                    kept.append(row)
                    size += len(row.payload or b"")
                    if len(kept) >= BATCH_ROWS or size >= BATCH_BYTES:
                        yield rows_to_batch(kept, schema)
                        kept, size = [], 0
        for rows in (kept, dropped):
            if rows:
                yield rows_to_batch(rows, schema)


def rows_to_batch(rows: list[RecordRow], schema: pa.Schema) -> pa.RecordBatch:
    """The rows as one batch of `schema`, column by column.

    The payloads are joined into one bytes object that the batch's payload column wraps without a copy. Arrow's
    own builder (`from_pylist`) grows the column by reallocation, copying the pages at each step into memory
    its pool has just taken from the system. In a `curate ingest` process that cost 0.07 ms of CPU a page
    (6 alternating commands on 2,439 real pages), most of it the kernel zeroing fresh pages.
    """
    arrays = [
        _payload_array([row.payload for row in rows])
        if field.name == "payload"
        else pa.array([getattr(row, field.name) for row in rows], type=field.type)
        for field in schema
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _payload_array(payloads: list[bytes | None]) -> pa.Array:
    pages = [payload for payload in payloads if payload is not None]
    offsets = list(accumulate(map(len, pages), initial=0))
    if len(pages) < len(payloads) or offsets[-1] > _MAX_JOINED_BYTES:
        return pa.array(payloads, type=pa.binary())
    offsets_buffer = pa.array(offsets, type=pa.int32()).buffers()[1]
    return pa.Array.from_buffers(pa.binary(), len(pages), [None, offsets_buffer, pa.py_buffer(b"".join(pages))])
