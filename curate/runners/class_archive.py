"""A class-data-sharing archive of Spark's classes for the local driver JVM (JDK 17 AppCDS).

A local Spark session loads and verifies some 10,000 classes from Spark's jars at every start, on every
command. Dumped once into a CDS archive, they are mapped instead: on 2 cores the session start went from
3.7 to 2.0 s and the JVM's CPU over a first `curate ingest` of 3,252 records from 3.8 to 2.4-2.9 s.

The archive is built by `python -m curate.runners.class_archive` (`make setup` runs it): a child Python
starts a local session with `-XX:ArchiveClassesAtExit`, runs one small job through the paths every stage
uses (Arrow to Python and back, persist, aggregation, window, join, Parquet out and in), and exits; the JVM
writes the archive as it exits, under a temporary name that is renamed into place only once complete.
Sessions use it when it exists for this JVM and this Spark; the JVM itself refuses (and runs without) an
archive that does not match its classpath. Nothing else changes: without an archive, sessions start as
before. Local masters only: executors on a cluster are other machines' JVMs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from curate.cache_dir import cache_root

DUMP_ENV = "CURATE_CLASS_ARCHIVE_DUMP"


def _java_binary() -> Path | None:
    home = os.environ.get("JAVA_HOME")
    found = Path(home) / "bin" / "java" if home else None
    if found is None or not found.exists():
        which = shutil.which("java")
        found = Path(which) if which else None
    return found.resolve() if found is not None and found.exists() else None


def archive_path() -> Path | None:
    """Where the archive for this JVM binary and this pyspark lives (None without a java on this machine)."""
    import pyspark

    java = _java_binary()
    if java is None:
        return None
    stat = java.stat()
    jars = Path(pyspark.__file__).parent / "jars"
    # The JVM checks the classpath and each jar's size and mtime against the archive: a reinstalled pyspark
    # (a new venv, another checkout) must name a new archive, not find one the JVM will refuse.
    entries = [(entry.name, entry.stat()) for entry in jars.iterdir()] if jars.is_dir() else []
    listing = sorted((name, status.st_size, status.st_mtime_ns) for name, status in entries)
    identity = (str(java), stat.st_size, stat.st_mtime_ns, pyspark.__version__, str(jars), listing)
    key = hashlib.sha256(repr(identity).encode())
    return cache_root() / f"spark-classes-{key.hexdigest()[:16]}.jsa"


def java_options() -> list[str]:
    """The driver JVM's options for the archive: dump it (while building), use it (when built), or none."""
    if dump := os.environ.get(DUMP_ENV):
        return [f"-XX:ArchiveClassesAtExit={dump}"]
    path = archive_path()
    if path is None or not path.is_file():
        return []
    # A refused archive (a JVM update in place) only means a slower start: not a warning on every command.
    return [f"-XX:SharedArchiveFile={path}", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"]


def _exercise() -> None:
    """The child: one local session through the code paths the stages use, then exit (the JVM dumps)."""
    import pyarrow as pa
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from curate.runners.spark import build_session

    spark = build_session("local[2]", app_name="curate-class-archive")
    with tempfile.TemporaryDirectory(prefix="curate-class-archive-") as scratch:
        frame = spark.range(0, 20_000, numPartitions=2).withColumn("text", F.concat(F.lit("doc "), F.col("id")))

        def passthrough(batches):  # type: ignore[no-untyped-def]
            for batch in batches:
                yield pa.RecordBatch.from_arrays([batch.column(0), batch.column(1)], names=["id", "text"])

        mapped = frame.mapInArrow(passthrough, frame.schema).persist(StorageLevel.MEMORY_AND_DISK)
        mapped.groupBy((F.col("id") % 7).alias("key")).count().collect()
        window = Window.partitionBy((F.col("id") % 13).alias("group")).orderBy("id")
        ranked = mapped.withColumn("first", F.first("id").over(window))
        ranked.join(mapped.select("id"), "id").write.mode("overwrite").option("compression", "zstd").parquet(scratch)
        spark.read.parquet(scratch).where(F.col("id") > 5).distinct().count()
        mapped.unpersist()
    spark.stop()


def build() -> Path | None:
    """Build the archive if missing; returns its path (None when no JVM or the build failed)."""
    target = archive_path()
    if target is None:
        return None
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    env = {**os.environ, DUMP_ENV: str(staging)}
    done = subprocess.run(
        [sys.executable, "-c", "from curate.runners.class_archive import _exercise; _exercise()"],
        env=env,
        # Read to the end: the JVM holds these pipes until it has written the archive and exited, after the
        # Python child itself is gone.
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=600,
        check=False,
    )
    if done.returncode != 0 or not staging.is_file() or staging.stat().st_size == 0:
        return None
    os.replace(staging, target)
    return target


def main() -> int:
    try:
        path = build()
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"note: no Spark class archive ({exc}); sessions start without one", file=sys.stderr)
        return 0
    if path is None:
        print("note: no Spark class archive could be built; sessions start without one", file=sys.stderr)
    else:
        print(f"Spark class archive: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
