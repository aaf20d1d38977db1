"""Exact verification on the driver: the shingle sets of a small corpus's candidate documents, fetched once.

On Spark, `with_exact_jaccard` joins the near-threshold pairs with their texts and measures them in the
Python workers: about seven jobs a call (the checkpoint, the id broadcast, two joins, the map), and the
candidates and every star pass call it. On the benchmark's 6,720 documents those calls were some twenty jobs
and several seconds of a cold stage. When the corpus was banded on the driver and its candidate documents
have at most `DRIVER_MAX_SHINGLE_BYTES` of shingles (by their signatures' `n_shingles`, an upper bound), one
job brings their shingle sets here: kept beside the signatures by the MinHash job (the stage does so when the
corpus is this small), or else shingled from the texts on the executors. The candidates and the star passes
then measure against them, each document shingled once rather than once for every pair it is in.

The figures are `with_exact_jaccard`'s: the same `shingle_sets` and `set_jaccard`, only where the estimate
lies within the margin of the threshold (compared in double precision, as Spark compares a float column with
a double), and the estimate kept where a text is missing (an earlier crawl's documents, a null text).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.runners.spark import map_in_arrow
from curate.steps.minhash import SHINGLE_SET, set_jaccard, shingle_set_column, shingle_sets, shingle_sets_of_column

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

# 4 bytes a shingle (a uint32 hash, about one word of text), through the driver JVM and then in numpy:
# 64 MB is ~16M shingles, within the smallest driver (1 GB).
DRIVER_MAX_SHINGLE_BYTES = 64 * 2**20

_SHINGLE_SETS = pa.schema([("doc_id", pa.string()), (SHINGLE_SET, pa.binary())])


class _ShingleSetsFunction:
    """The picklable body of `mapInArrow`: (doc_id, text) -> (doc_id, shingle_set)."""

    def __init__(self, ngram: int) -> None:
        self.ngram = ngram

    def __call__(self, batches: Any) -> Any:
        for batch in batches:
            sets = shingle_set_column(shingle_sets(batch.column("text"), self.ngram))
            yield pa.RecordBatch.from_arrays([batch.column("doc_id"), sets], schema=_SHINGLE_SETS)


class DriverShingleSets:
    """The shingle sets of some of this run's documents, by doc_id."""

    def __init__(self, doc_ids: pa.Array, sets: list[np.ndarray]) -> None:
        self.doc_ids = doc_ids
        self.sets = sets

    @classmethod
    def fetch(
        cls,
        texts: DataFrame,
        doc_ids: pa.Array,
        ngram: int,
        n_shingles: int,
        max_bytes: int = DRIVER_MAX_SHINGLE_BYTES,
        signatures: DataFrame | None = None,
    ) -> DriverShingleSets | None:
        """The sets of the non-null texts of `doc_ids` in `texts` (doc_id, text); None when `n_shingles`, the
        documents' shingle count, exceeds `max_bytes` at 4 bytes a shingle.

        `signatures` with a `shingle_set` column (`compute_signatures(..., with_shingle_sets=True)` of the same
        documents as `texts`) gives the sets without shingling the texts again; `doc_ids` must then be documents
        with shingles (candidates), whose texts are never null.
        """
        from pyspark.sql import functions as F

        if n_shingles * 4 > max_bytes:
            return None
        if not len(doc_ids):
            return cls(pa.array([], pa.string()), [])
        spark = texts.sparkSession
        ids = F.broadcast(spark.createDataFrame(pa.table({"doc_id": pc.unique(doc_ids)}), schema="doc_id string"))
        if signatures is not None and SHINGLE_SET in signatures.columns:
            # The candidates have shingles, so a text: their stored sets are what `texts` would give.
            table = signatures.select("doc_id", SHINGLE_SET).join(ids, "doc_id", "left_semi").toArrow()
        else:
            needed = texts.join(ids, "doc_id", "left_semi").where(F.col("text").isNotNull()).select("doc_id", "text")
            table = map_in_arrow(needed, _ShingleSetsFunction(ngram), _SHINGLE_SETS).toArrow()
        ids_column = table.column("doc_id").combine_chunks()
        # A doc_id is one document; were one stored twice, its first text stands for it.
        first = np.flatnonzero(np.asarray(pc.index_in(ids_column, value_set=ids_column)) == np.arange(len(ids_column)))
        rows = pa.array(first, pa.int64())
        sets = shingle_sets_of_column(table.column(SHINGLE_SET).combine_chunks().take(rows))
        return cls(ids_column.take(rows), sets)

    def measured(self, pairs: pa.Table, left: str, right: str, *, threshold: float, margin: float) -> pa.Table:
        """`pairs` (left, right, jaccard, ...) with the exact Jaccard where the estimate lies within `margin` of
        `threshold` and both sets are here, the estimate elsewhere: `with_exact_jaccard`'s figures."""
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
        values[measure] = set_jaccard([self.sets[row] for row in a], [self.sets[row] for row in b])
        return pairs.set_column(jaccard_at, pairs.schema.field(jaccard_at), pa.array(values, pa.float32()))
