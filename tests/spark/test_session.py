"""The session curate builds: the settings a local run depends on."""

from __future__ import annotations

import pytest

from curate.runners.spark import LOCAL_JIT_OPTION

pytestmark = pytest.mark.spark


def test_local_session_runs_the_client_jit_with_quiet_logs(spark) -> None:
    options = spark.conf.get("spark.driver.extraJavaOptions")
    assert LOCAL_JIT_OPTION in options.split()
    assert "log4j2-quiet.properties" in options
    # The JVM really runs with it: HotSpot reports the flag's live value.
    jvm = spark.sparkContext._jvm
    bean = jvm.java.lang.management.ManagementFactory.getPlatformMXBean(
        jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean")
    )
    assert bean.getVMOption("TieredStopAtLevel").getValue() == "1"
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"


def test_the_local_jvm_maps_spark_classes_from_the_archive_make_setup_builds(spark) -> None:
    from curate.runners.class_archive import archive_path

    path = archive_path()
    if path is None or not path.is_file():
        pytest.skip("no Spark class archive: `python -m curate.runners.class_archive` (make setup) builds it")
    jvm = spark.sparkContext._jvm
    bean = jvm.java.lang.management.ManagementFactory.getPlatformMXBean(
        jvm.java.lang.Class.forName("com.sun.management.HotSpotDiagnosticMXBean")
    )
    assert bean.getVMOption("SharedArchiveFile").getValue() == str(path)


def test_without_an_archive_sessions_start_as_before(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from curate.cache_dir import CACHE_ENV
    from curate.runners.class_archive import DUMP_ENV, java_options

    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    monkeypatch.delenv(DUMP_ENV, raising=False)
    assert java_options() == []
    monkeypatch.setenv(DUMP_ENV, str(tmp_path / "building.jsa"))
    assert java_options() == [f"-XX:ArchiveClassesAtExit={tmp_path / 'building.jsa'}"]


def test_local_python_workers_fork_from_a_daemon_that_preloaded_the_steps(spark) -> None:
    def worker_view(rows):  # type: ignore[no-untyped-def]
        import os
        import sys

        for _ in rows:
            pass
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as cmdline:
            parent = cmdline.read().split(b"\0")
        threads = len(os.listdir("/proc/self/task"))
        import pyspark

        zips = [entry for entry in sys.path if entry.endswith(".zip") and os.path.exists(entry)]
        yield (b" ".join(parent).decode(), "curate.steps.extract" in sys.modules, threads, pyspark.__file__, zips)

    views = spark.sparkContext.parallelize(range(4), 2).mapPartitions(worker_view).collect()
    assert views, "no worker reported"
    for parent, preloaded, threads, pyspark_file, zips in views:
        assert "curate.runners.spark_daemon" in parent
        # The task itself never imported the extraction step: the daemon did, before forking.
        assert preloaded
        # Forked from one thread, no BLAS pool started: the worker's threads are pyspark's own few.
        assert threads <= 4, threads
        # pyspark from the installed package (compiled once, cached), not from Spark's zip of the same files.
        assert ".zip" not in pyspark_file and not zips, (pyspark_file, zips)
