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
