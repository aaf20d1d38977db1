"""The near-dedup outputs written by the driver, for a small corpus whose run lives on local disk.

On Spark, writing the removals, the documents (the join with the removals, the counts, the kept and rejected
Parquet) and the kept signatures is about fifteen jobs. On a fresh JVM its Parquet writer and generated code
warm up inside them: 3-6 s of a 12 s cold stage on the benchmark's 6,720 documents, against 1.3 s warm. Up to
`DRIVER_MAX_DOCUMENTS` input documents, with the input and the run on local disk, the driver streams the
documents through pyarrow instead, as the local runner writes every stage. The rows are the same: the removals
come from the same DataFrame, with the drop detail Spark formats (`removal_detail`), and the kept rows,
`_rejected/`, `_duplicates/` and `_signatures/` hold what the Spark writes would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from curate.io import fs
from curate.schema import DROP_DETAIL, DROP_REASON, DUPLICATES, SIGNATURES
from curate.stage_rows import (
    LocalParquetSink,
    OutputCounts,
    read_dataset_batches,
    read_stage_table,
    stage_dataset,
    write_local_output,
)
from curate.stages.dedup.candidates_on_driver import DRIVER_MAX_DOCUMENTS
from curate.stages.dedup.keep import NEAR_DUPLICATE, removal_detail
from curate.step import conform

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from pyspark.sql import DataFrame

    from curate.stage import Stage


def writes_on_driver(source: str, stage: Stage, rows_in: int, max_documents: int = DRIVER_MAX_DOCUMENTS) -> bool:
    """Whether the driver writes this stage's outputs: a local input and run of at most `max_documents` rows."""
    return max_documents > 0 and rows_in <= max_documents and fs.is_local(source) and fs.is_local(stage.tmp_path)


def removals_table(duplicates: DataFrame) -> pa.Table:
    """The DUPLICATES rows, by (cluster_id, doc_id), with the drop detail of each removed document."""
    from pyspark.sql import functions as F

    detail = removal_detail(F.col("kept_doc_id"), F.col("jaccard")).alias(DROP_DETAIL)
    table = duplicates.select(*DUPLICATES.names, detail).toArrow()
    return table.sort_by([("cluster_id", "ascending"), ("doc_id", "ascending")])


def write_table(table: pa.Table, directory: str, schema: pa.Schema) -> None:
    """`table`'s `schema` columns as a stage side directory (a local path), as the local runner writes."""
    sink = LocalParquetSink(directory, schema)
    for batch in table.to_batches():
        sink.write(conform(batch, schema))
    sink.close()


def write_duplicates(removals: pa.Table, directory: str) -> None:
    """`_duplicates/`: the DUPLICATES columns of `removals`."""
    write_table(removals, directory, DUPLICATES)


def write_documents(stage: Stage, source: str, removals: pa.Table) -> OutputCounts:
    """`mark_duplicates` and `write_spark_output`, streamed: the kept documents and `_rejected/`."""
    schema = (
        stage_dataset(source)
        .schema.append(pa.field(DROP_REASON, pa.string()))
        .append(pa.field(DROP_DETAIL, pa.string()))
    )
    removed_ids = removals.column("doc_id").combine_chunks()
    details = removals.column(DROP_DETAIL).combine_chunks()

    def marked(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            at = pc.index_in(batch.column("doc_id"), value_set=removed_ids)
            reason = pc.if_else(pc.is_valid(at), pa.scalar(NEAR_DUPLICATE), pa.scalar(None, pa.string()))
            yield batch.append_column(DROP_REASON, reason).append_column(DROP_DETAIL, details.take(at))

    return write_local_output(stage, marked(read_dataset_batches(source)), schema)


def write_kept_signatures(signatures: str, removals: pa.Table, directory: str) -> None:
    """The SIGNATURES rows of `signatures` (a local Parquet directory) whose documents were kept, by doc_id."""
    table = read_stage_table(signatures, columns=SIGNATURES.names)
    kept = table.filter(pc.invert(pc.is_in(table.column("doc_id"), value_set=removals.column("doc_id"))))
    write_table(kept.sort_by("doc_id"), directory, SIGNATURES)
