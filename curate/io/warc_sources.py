"""WARC input files as the Spark DataFrame that ingest's ReadWarcStep consumes.

Files an executor can open itself (local paths and `file://` URIs on a filesystem every executor sees,
`s3://`/`s3a://`, `gs://`, `http(s)://`; see `curate.io.fs.streams_directly`) become a DataFrame of paths,
one partition per file: each executor opens its file and streams it in bounded reads, so memory does not
grow with file size. Paths on other Hadoop filesystems (`hdfs://`, `viewfs://`, `abfs://`...) have no
Python reader that works without native Hadoop libraries: Spark's `binaryFile` source reads them through
its Hadoop layer (credentials, retries, block locality), and ReadWarcStep parses the records from the
`content` column.

The cost of `binaryFile`: a whole file is one row, held by the executor in the JVM, then in an Arrow batch,
then as Python bytes. A 1 GB Common Crawl WARC therefore wants several GB of executor plus PySpark memory,
and Arrow batches must carry one file each (`spark.sql.execution.arrow.maxBytesPerBatch` below the file
size; the first row of a batch is always sent). Files over 2 GB are refused by Spark
(`spark.sql.sources.binaryFile.maxLength`); Common Crawl's are ~1 GB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from curate.io import fs
from curate.schema import WARC_FILES

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# WARC_FILES plus the file's bytes, for inputs read through Hadoop.
WARC_FILE_CONTENTS = pa.schema([*WARC_FILES, pa.field("content", pa.binary())])


def reads_through_hadoop(paths: list[str]) -> bool:
    return any(not fs.streams_directly(path) for path in paths)


def _qualified(spark: SparkSession, path: str) -> str:
    """Hadoop's fully qualified form of `path` (`file:/x`, `s3a://bucket/key`): what binaryFile reports."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    hadoop_path = jvm.org.apache.hadoop.fs.Path(fs.to_uri(path))
    filesystem = hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())  # type: ignore[union-attr]
    return str(filesystem.makeQualified(hadoop_path).toString())


def warc_files_frame(
    spark: SparkSession, paths: list[str], *, through_hadoop: bool | None = None
) -> tuple[DataFrame, pa.Schema]:
    """(DataFrame, its Arrow schema) for ReadWarcStep. `through_hadoop` defaults to "any path is remote"."""
    if through_hadoop is None:
        through_hadoop = reads_through_hadoop(paths)
    if not through_hadoop:
        from pyspark.sql import functions as F

        # One partition per file: a WARC file is the unit of parallelism and of failure. Built in the JVM (a
        # range indexing a literal array) rather than from a Python RDD, whose rows would cost every task a
        # second Python worker just to pickle one path.
        listed = F.array(*[F.lit(path) for path in paths])
        frame = spark.range(0, len(paths), 1, max(1, len(paths)))
        return frame.select(F.element_at(listed, F.col("id").cast("int") + 1).alias("warc_path")), WARC_FILES

    from pyspark.sql import functions as F

    # Rows keep the path as the user gave it, so per-file counts and lineage name files as the input did.
    given = spark.createDataFrame([(_qualified(spark, p), p) for p in paths], "path string, given string")
    files = spark.read.format("binaryFile").load([fs.to_uri(p) for p in paths])
    frame = files.join(F.broadcast(given), "path", "left").select(
        F.coalesce(F.col("given"), F.col("path")).alias("warc_path"), F.col("content")
    )
    return frame, WARC_FILE_CONTENTS
