"""DecontaminateStep: flag (or cut) documents that contain benchmark n-grams, and say exactly which.

Output: the input columns plus `contamination_hits`, a list<struct> with one element per hit
(benchmark, item_id, field, ngram, offset, length, matched_tokens), null for clean documents. The stage
(stage.py) explodes that column into the `contamination` dataset (schema.CONTAMINATION) and strips it
from the documents it writes, so downstream stages see plain DOCUMENTS.

Modes:
- "drop" (default, the DeepSeekMath rule): a document with any hit is dropped with reason
  `benchmark_contamination` and detail `benchmark:item_id` of its first hit (by offset).
- "cut": the matched passages are removed from `text` and the document is kept; a document left
  without a single token (only punctuation or space) is dropped with the same reason. Hits still record the original
  offsets, i.e. offsets into the text before cutting.

The index file is loaded once per Python worker (`worker_cached`); on a cluster the stage ships it with
`SparkContext.addFile` and executors find it by file name (`SparkFiles.get`).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from curate.decontam.index import NGramIndex
from curate.decontam.normalize import tokenize
from curate.decontam.scan import Hit, cut, scan
from curate.errors import ConfigError
from curate.schema import CONTAMINATION, HIT_TYPE
from curate.step import Step, mark_dropped, worker_cached

HITS_COLUMN = "contamination_hits"
DROP_REASON_CONTAMINATED = "benchmark_contamination"
MODES = ("drop", "cut")
HITS_TYPE = pa.list_(HIT_TYPE)


def file_digest(path: str) -> str:
    h = xxhash.xxh3_128()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def resolve_index_path(path: str) -> str:
    """The index file on this machine: the given path, else the copy Spark shipped with addFile."""
    if os.path.exists(path):
        return path
    from pyspark import SparkFiles

    try:
        shipped = SparkFiles.get(os.path.basename(path))
    except AssertionError as exc:  # SparkFiles asserts a SparkContext: outside Spark the path is just missing
        raise ConfigError(f"decontamination index {path} does not exist") from exc
    if not os.path.exists(shipped):
        raise ConfigError(f"decontamination index {path} does not exist here nor in SparkFiles ({shipped})")
    return shipped


def load_index_cached(path: str) -> NGramIndex:
    resolved = resolve_index_path(path)
    stat = os.stat(resolved)
    # Keyed by size and mtime as well, so a rebuilt index is not served stale from a reused worker.
    return worker_cached(
        f"decontam-index:{resolved}:{stat.st_size}:{stat.st_mtime_ns}", lambda: NGramIndex.load(resolved)
    )


def hits_array(hits: list[list[Hit]]) -> pa.Array:
    rows: list[list[dict[str, Any]] | None] = []
    for doc_hits in hits:
        if not doc_hits:
            rows.append(None)
            continue
        rows.append(
            [
                {
                    "benchmark": h.benchmark,
                    "item_id": h.item_id,
                    "field": h.field,
                    "ngram": h.ngram,
                    "offset": h.offset,
                    "length": h.length,
                    "matched_tokens": h.matched_tokens,
                }
                for h in doc_hits
            ]
        )
    return pa.array(rows, type=HITS_TYPE)


def hit_rows(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The `contamination` rows (schema.CONTAMINATION) of a batch that carries the hits column."""
    hits = batch.column(HITS_COLUMN)
    flat = pc.list_flatten(hits)
    parents = pc.list_parent_indices(hits)
    columns: list[pa.Array] = []
    for field in CONTAMINATION:
        if field.name in ("doc_id", "url"):
            source = batch.column(field.name) if field.name in batch.schema.names else pa.nulls(batch.num_rows)
            columns.append(pc.take(source, parents).cast(field.type))
        else:
            columns.append(flat.field(field.name).cast(field.type))
    return pa.RecordBatch.from_arrays(columns, schema=CONTAMINATION)


class DecontaminateStep(Step):
    name = "decontaminate_ngram_v1"
    error_reason = "decontam_error"

    def __init__(self, index_path: str, mode: str = "drop", text_column: str = "text") -> None:
        super().__init__()
        if mode not in MODES:
            raise ConfigError(f"decontamination mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.index_path = str(index_path)
        self.mode = mode
        self.text_column = text_column
        self._digest: str | None = None

    def config(self) -> dict[str, Any]:
        if self._digest is None:
            self._digest = file_digest(resolve_index_path(self.index_path))
        return {"mode": self.mode, "text_column": self.text_column, "index_digest": self._digest}

    def output_schema(self, input_schema: pa.Schema) -> pa.Schema:
        if input_schema.get_field_index(HITS_COLUMN) >= 0:
            return input_schema
        return input_schema.append(pa.field(HITS_COLUMN, HITS_TYPE))

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        index = load_index_cached(self.index_path)
        text_index = batch.schema.get_field_index(self.text_column)
        if text_index < 0:
            raise ConfigError(f"decontamination: the input has no {self.text_column!r} column")
        texts: list[str | None] = batch.column(text_index).to_pylist()
        hits = scan(texts, index)
        flagged = [bool(h) for h in hits]
        batch = batch.append_column(pa.field(HITS_COLUMN, HITS_TYPE), hits_array(hits))
        if not any(flagged):
            return batch
        details = pa.array([f"{h[0].benchmark}:{h[0].item_id}" if h else None for h in hits], pa.string())
        if self.mode == "drop":
            return mark_dropped(batch, pa.array(flagged), DROP_REASON_CONTAMINATED, details)
        new_texts = [cut(t or "", h) if h else t for t, h in zip(texts, hits, strict=True)]
        remaining = np.diff(tokenize([t or "" if h else "" for t, h in zip(new_texts, hits, strict=True)]).doc_offsets)
        emptied = [bool(h) and not left for h, left in zip(hits, remaining.tolist(), strict=True)]
        field = batch.schema.field(text_index)
        batch = batch.set_column(text_index, field, pa.array(new_texts, field.type))
        n_chars = batch.schema.get_field_index("n_chars")
        if n_chars >= 0:
            lengths = pc.cast(pc.utf8_length(batch.column(text_index)), batch.schema.field(n_chars).type)
            batch = batch.set_column(n_chars, batch.schema.field(n_chars), lengths)
        if any(emptied):
            batch = mark_dropped(batch, pa.array(emptied), DROP_REASON_CONTAMINATED, details)
        return batch
