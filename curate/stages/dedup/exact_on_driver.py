"""Exact verification on the driver: the candidate documents' texts of a small corpus, fetched once.

On Spark, `with_exact_jaccard` joins the near-threshold pairs with their texts and measures them in the
Python workers: about seven jobs a call (the checkpoint, the id broadcast, two joins, the map), and the
candidates and every star pass call it. On the benchmark's 6,720 documents those calls were some twenty jobs
and several seconds of a cold stage. When the corpus was banded on the driver and its candidate documents'
texts come to at most `DRIVER_MAX_TEXT_BYTES`, they are fetched here instead, and the candidates and the star
passes measure against them; each text is shingled once, not once per pair it is in.

The figures are `with_exact_jaccard`'s: the same shingle sets and `set_jaccard`, only where the estimate lies
within the margin of the threshold (compared in double precision, as Spark compares a float column with a
double), and the estimate kept where a text is missing (an earlier crawl's documents, a null text).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.steps.minhash import set_jaccard, shingle_sets

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

# The texts pass through the driver JVM, then sit in Arrow beside their shingle sets (4 bytes a shingle,
# about a word): 64 MB of UTF-8 is ~200 MB at the peak, within the smallest driver (1 GB).
DRIVER_MAX_TEXT_BYTES = 64 * 2**20


class DriverTexts:
    """The texts of some of this run's documents, by doc_id, and their shingle sets once measured."""

    def __init__(self, doc_ids: pa.Array, texts: pa.Array, ngram: int) -> None:
        self.doc_ids = doc_ids
        self.texts = texts
        self.ngram = ngram
        self._sets: dict[int, np.ndarray] = {}

    @classmethod
    def fetch(
        cls, texts: DataFrame, doc_ids: pa.Array, ngram: int, max_bytes: int = DRIVER_MAX_TEXT_BYTES
    ) -> DriverTexts | None:
        """The non-null texts of `doc_ids` found in `texts` (doc_id, text), or None when they exceed `max_bytes`."""
        from pyspark.sql import functions as F

        if not len(doc_ids):
            return cls(pa.array([], pa.string()), pa.array([], pa.string()), ngram)
        spark = texts.sparkSession
        ids = F.broadcast(spark.createDataFrame(pa.table({"doc_id": pc.unique(doc_ids)}), schema="doc_id string"))
        needed = texts.join(ids, "doc_id", "left_semi").where(F.col("text").isNotNull()).select("doc_id", "text")
        size = needed.agg(F.sum(F.octet_length("text"))).first()
        if size is not None and (size[0] or 0) > max_bytes:
            return None
        table = needed.toArrow()
        # A doc_id is one document; were one stored twice, its first text stands for it.
        ids_column = table.column("doc_id").combine_chunks()
        first = np.asarray(pc.index_in(ids_column, value_set=ids_column)) == np.arange(len(ids_column))
        table = table.filter(pa.array(first))
        return cls(table.column("doc_id").combine_chunks(), table.column("text").combine_chunks(), ngram)

    def measured(self, pairs: pa.Table, left: str, right: str, *, threshold: float, margin: float) -> pa.Table:
        """`pairs` (left, right, jaccard, ...) with the exact Jaccard where the estimate lies within `margin` of
        `threshold` and both texts are here, the estimate elsewhere: `with_exact_jaccard`'s figures."""
        jaccard_at = pairs.schema.get_field_index("jaccard")
        estimate = np.asarray(pairs.column(jaccard_at).to_numpy(), dtype=np.float32)
        left_rows = pc.index_in(pairs.column(left), value_set=self.doc_ids)
        right_rows = pc.index_in(pairs.column(right), value_set=self.doc_ids)
        known = np.asarray(pc.and_(pc.is_valid(left_rows), pc.is_valid(right_rows)))
        near = np.abs(estimate.astype(np.float64) - threshold) < margin
        measure = np.flatnonzero(known & near)
        if not len(measure):
            return pairs
        a = np.asarray(pc.fill_null(left_rows, -1))[measure]
        b = np.asarray(pc.fill_null(right_rows, -1))[measure]
        values = estimate.copy()
        values[measure] = set_jaccard(self._shingle_sets(a), self._shingle_sets(b))
        return pairs.set_column(jaccard_at, pairs.schema.field(jaccard_at), pa.array(values, pa.float32()))

    def _shingle_sets(self, rows: np.ndarray) -> list[np.ndarray]:
        missing = np.unique(np.array([row for row in rows.tolist() if row not in self._sets], dtype=np.int64))
        if len(missing):
            texts = self.texts.take(pa.array(missing))
            self._sets.update(zip(missing.tolist(), shingle_sets(texts, self.ngram), strict=True))
        return [self._sets[row] for row in rows.tolist()]
