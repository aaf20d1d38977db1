"""Building the Spark session: local mode by default, any cluster master by flag or environment."""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curate.errors import ConfigError, debug_enabled, one_line
from curate.runners.arrow_pandas import arrow_with_pandas

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

    from curate.step import Step

MASTER_ENV = "CURATE_SPARK_MASTER"
DEFAULT_MASTER = "local[*]"
# HTML rows are 20-30 KB: Spark's default of 10,000 rows per Arrow batch would be 200-300 MB.
ARROW_BATCH_ROWS = 1000


def _default_driver_memory() -> str:
    # Local mode runs executors inside the driver JVM; leave most RAM to the Python workers (models, batches).
    try:
        total_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        total_gb = 8
    return f"{max(1, min(8, int(total_gb // 4)))}g"


LOCAL_JIT_OPTION = "-XX:TieredStopAtLevel=1"
# A standalone master that does not answer would otherwise hold the driver for Spark's 3 x 20 s registration
# retries; a TCP connect tells within this many seconds whether anything listens at all.
MASTER_CONNECT_TIMEOUT_S = 5.0


def jvm_log_path() -> str:
    """Where the driver JVM's own output goes unless --debug: start-up banners, Java stack traces."""
    return os.path.join(tempfile.gettempdir(), f"curate-spark-{os.getpid()}.log")


def check_master_reachable(master: str) -> None:
    """A `spark://host:port[,host:port]` master must accept a connection, checked before any JVM starts."""
    if not master.startswith("spark://"):
        return
    failures = []
    for address in master.removeprefix("spark://").split(","):
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=MASTER_CONNECT_TIMEOUT_S):
                return
        except ValueError:
            failures.append(f"{address} (not host:port)")
        except OSError as exc:
            failures.append(f"{address} ({exc.strerror or type(exc).__name__})")
    raise ConfigError(
        f"--master {master}: no Spark master answers at {', '.join(failures)}; start the master or fix the URL"
    )


def _launch_quiet_gateway(options: dict[str, Any], log_path: str) -> None:
    """Start the driver JVM with its stderr in `log_path`: Java's `Using incubator modules` warning and any
    stack trace it prints itself never reach the terminal. pyspark reuses a gateway that is already set."""
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    conf = SparkConf()
    for key, value in options.items():
        conf.set(key, str(value))
    with open(log_path, "ab") as log:
        gateway = launch_gateway(conf, popen_kwargs={"stderr": log})
    SparkContext._gateway = gateway
    SparkContext._jvm = gateway.jvm


def build_session(
    master: str | None = None,
    *,
    app_name: str = "curate",
    driver_memory: str | None = None,
    executor_memory: str | None = None,
    shuffle_partitions: int | None = None,
    extra_conf: dict[str, str] | None = None,
    verbose: bool = False,
) -> SparkSession:
    """A SparkSession for `master` (default: $CURATE_SPARK_MASTER, else local[*])."""
    arrow_with_pandas()  # pyspark's driver hands pandas objects to pyarrow
    # Workers must run this interpreter: the PATH's python may lack pyarrow or curate itself.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    master = master or os.environ.get(MASTER_ENV) or DEFAULT_MASTER
    verbose = verbose or debug_enabled()
    is_local = master.startswith("local")
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.driver.memory", driver_memory or _default_driver_memory())
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(ARROW_BATCH_ROWS))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC")
        # INT96 (Spark's default) reads back as naive nanoseconds elsewhere; micros + UTC is what pyarrow writes.
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.python.worker.reuse", "true")
        .config("spark.executorEnv.PYSPARK_PYTHON", os.environ["PYSPARK_PYTHON"])
        .config("spark.ui.enabled", "true" if verbose else "false")
        .config("spark.ui.showConsoleProgress", "true" if verbose else "false")
        .config("spark.local.dir", os.environ.get("SPARK_LOCAL_DIRS", tempfile.gettempdir()))
        # Stage output is committed by renaming a finished directory; no _SUCCESS noise is needed.
        .config("spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
        .config("spark.sql.sources.partitionOverwriteMode", "static")
    )
    if shuffle_partitions is not None:
        builder = builder.config("spark.sql.shuffle.partitions", str(shuffle_partitions))
    if not is_local:
        builder = builder.config("spark.executor.memory", executor_memory or "4g")
    java_options = []
    if not verbose:
        quiet = Path(__file__).with_name("log4j2-quiet.properties").as_uri()
        java_options.append(f"-Dlog4j2.configurationFile={quiet}")
    if is_local:
        # In local mode the driver JVM does the executors' work on the same few cores, and the optimising JIT
        # (C2) competes with it for them while it warms up: on 2 cores the client compiler alone took the
        # near-dedup stage on a fresh JVM from 30.5 to 26.9 s and `curate ingest` of the sample WARCs from 24.2
        # to 21.5 s. The heavy per-document work runs in Python workers, so C2's peak speed matters little here.
        java_options.append(LOCAL_JIT_OPTION)
        # Workers forked from a daemon that has already imported what every task imports (see spark_daemon).
        # Local only: there this interpreter is the workers', so the module is known to import.
        builder = builder.config("spark.python.daemon.module", "curate.runners.spark_daemon")
        from curate.runners.class_archive import java_options as class_archive_options

        java_options.extend(class_archive_options())
    if java_options:
        builder = builder.config("spark.driver.extraJavaOptions", " ".join(java_options))
        builder = builder.config("spark.executor.extraJavaOptions", " ".join(java_options))
    for key, value in (extra_conf or {}).items():
        builder = builder.config(key, value)
    existing = SparkSession.getActiveSession()
    if existing is None:
        check_master_reachable(master)
    session = _start(builder, master, quiet=existing is None and not verbose)
    if existing is not None:
        # A running context read its Hadoop settings when it started, and getOrCreate passes on only SQL ones:
        # without this, `--spark-conf spark.hadoop.*` on a reused session (in-process calls) would be ignored.
        hadoop = session.sparkContext._jsc.hadoopConfiguration()  # type: ignore[union-attr]
        for key, value in (extra_conf or {}).items():
            if key.startswith("spark.hadoop."):
                hadoop.set(key.removeprefix("spark.hadoop."), value)
    if existing is None and shuffle_partitions is None and "spark.sql.shuffle.partitions" not in (extra_conf or {}):
        # Spark's 200 is sized for big clusters; on a few cores the empty tasks dominate every shuffle stage
        # (measured: URL dedup 183 s with 200 partitions, 43 s with 2, on 2 cores). ~3 tasks per core.
        parallelism = session.sparkContext.defaultParallelism
        session.conf.set("spark.sql.shuffle.partitions", str(max(4, 3 * parallelism)))
    if not verbose:
        session.sparkContext.setLogLevel("ERROR")
    return session


def _start(builder: Any, master: str, *, quiet: bool) -> SparkSession:
    """builder.getOrCreate(), with a session that cannot start reported in one line."""
    from pyspark import SparkContext

    log_path = jvm_log_path()
    try:
        if quiet and SparkContext._gateway is None:
            _launch_quiet_gateway(builder._options, log_path)
        return builder.getOrCreate()
    except Exception as exc:  # py4j and pyspark raise several unrelated types for one cause: the JVM side failed
        # A Py4JJavaError's own text is only "An error occurred while calling ...": the cause is the Java exception.
        java_exception = getattr(exc, "java_exception", None)
        text = str(java_exception.toString()) if java_exception is not None else str(exc)
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        where = f"; the JVM's output is in {log_path}" if quiet else ""
        if master.startswith("spark://"):
            where = f" (does a Spark master of this version listen there?){where}"
        raise ConfigError(
            f"--master {master}: the Spark session did not start ({one_line(first, 200)}){where}"
        ) from exc


# --- mapInArrow: the one adapter between DataFrames and Arrow batch functions -------------------------


class StepsFunction:
    """The picklable body of `mapInArrow`: the same `run_steps` the local runner calls."""

    def __init__(self, steps: list[Step], input_schema: pa.Schema) -> None:
        self.steps = steps
        self.input_schema = input_schema

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from curate.step import run_steps

        yield from run_steps(self.steps, batches, self.input_schema)


def map_in_arrow(
    df: DataFrame, function: Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]], schema: pa.Schema
) -> DataFrame:
    """`df` through `function` (Arrow batches in, batches of `schema` out) on the executors."""
    from curate.schema import spark_schema

    return df.mapInArrow(function, spark_schema(schema))


def map_steps(df: DataFrame, steps: list[Step], input_schema: pa.Schema | None = None) -> DataFrame:
    """`df` through a chain of steps; the output has the steps' columns plus `drop_reason` / `drop_detail`.

    `input_schema` defaults to `df`'s own schema in Arrow terms (timestamps in UTC, as curate stores them).
    """
    from curate.schema import arrow_schema_of
    from curate.step import final_schema

    schema = input_schema if input_schema is not None else arrow_schema_of(df)
    return map_in_arrow(df, StepsFunction(steps, schema), final_schema(steps, schema))
