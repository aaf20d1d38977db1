"""The local Parquet writer's files are read by Spark by their own columns."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from curate.stage_rows import LocalParquetSink

pytestmark = pytest.mark.spark


def test_a_schema_read_from_spark_files_does_not_hide_added_columns_from_spark(spark, tmp_path: Path) -> None:
    # What a schema read from a Spark-written stage carries: Spark's copy of that stage's columns.
    spark_copy = {"type": "struct", "fields": [{"name": "doc_id", "type": "string", "nullable": True, "metadata": {}}]}
    schema = pa.schema(
        [("doc_id", pa.string()), ("math_score", pa.float32())],
        metadata={"org.apache.spark.sql.parquet.row.metadata": json.dumps(spark_copy)},
    )
    sink = LocalParquetSink(str(tmp_path / "scored"), schema)
    sink.write(pa.RecordBatch.from_pydict({"doc_id": ["a"], "math_score": [0.5]}, schema=schema))
    sink.close()
    assert spark.read.parquet(str(tmp_path / "scored")).columns == ["doc_id", "math_score"]
