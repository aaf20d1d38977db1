"""`curate run` on a real Spark standalone cluster (a master and two 1-core workers on 127.0.0.1).

One run of the whole pipeline (demo recipe, the shared real WARCs), with faults injected by PID, is observed
by every test: an executor JVM is SIGKILLed while the extract stage runs (Spark must retry its task, and the
counts, taken from written data, must not change), then the driver is SIGKILLed once 03_near_dedup has
committed (the same command, run again, must skip the three finished stages and redo only the rest).

The cluster run reads its WARCs from `s3://` on a moto server on 127.0.0.1 (tests/support/s3_server.py), as
a cluster over a crawl in S3 does: the executors stream them through pyarrow with the keys the command
passes them, and it exports to `s3://`. The result must equal a Spark local-mode run of the same command on
the local paths: every stage's rows, kept, rejected and side datasets, every manifest's counts, and the
exported shards and manifest. Paths name the files as each run was given them, so they are compared by
their last two parts, and fingerprints (which hash the inputs' paths) are not compared.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest
from support.cluster import (
    JAVA_17,
    ClusterError,
    StandaloneCluster,
    alive,
    all_pids,
    cmdline,
    cwd,
    descendants,
    process_group,
    standalone_cluster,
)
from support.s3_server import S3Server, s3_server

from curate.io.fs import expand_inputs
from curate.manifest import MANIFEST_NAME
from curate.stages.dataset_card import CARD_FILE

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(2400)]

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "pipelines" / "demo.yaml"  # its seed and benchmark paths are relative to the repository
EXTRACT, URL_DEDUP, NEAR_DEDUP = "01_extract", "02_url_dedup", "03_near_dedup"
RESUMED_AFTER = (EXTRACT, URL_DEDUP, NEAR_DEDUP)
WAIT = 1200.0  # a busy 2-core machine runs these jobs several times slower than an idle one
# Timings and places differ between two runs by nature; everything else in a manifest must not. A shard's
# sha256 too: Spark's Parquet writer (parquet-mr) lists each column chunk's encodings in hash-set order,
# which changes from one JVM to the next, so equal rows give equal sizes but not equal bytes.
# (`doc_ids_sha256`, over the exported ids, is compared.)
VOLATILE = {"created", "wall_seconds", "runner", "inputs", "run_dir", "written_mb_per_s", "code_version", "sha256"}
# Fingerprints hash the inputs' paths (local paths in the reference, s3:// keys on the cluster).
VOLATILE |= {"fingerprint", "input_fingerprints"}
BUCKET, EXPORTS = "warcs", "exports"
# Training runs on the driver alone, the same code in local mode and on a cluster; the demo's classifier
# (2,000 examples a class, tuned on held-out sources) took ~70 s of the ~150 s this module costs. A smaller
# one still takes the recipe's path (both seed sources, `fit: auto`). A token budget ranks by score, so the
# export holds the top pages whatever threshold the small model would choose (it chose one page).
EXPORTED_AT_LEAST = 5
CLASSIFIER = ("train.max_per_class=400", "train.bucket=50000", "train.dim=32", "select.token_budget=30000")
S3_EXPORT = f"s3://{EXPORTS}/corpus"


@pytest.fixture(scope="module")
def shared_warcs(shared_data: Path) -> list[str]:
    paths = expand_inputs([str(shared_data / "cc-warc/*/*.warc.gz"), str(shared_data / "web-warc/*/*.warc.gz")])
    assert len(paths) == 6
    return paths


def _run_command(inputs: list[str], out: Path, master: str, *conf: str, export: str | None = None) -> list[str]:
    command = [sys.executable, "-m", "curate.cli.main", "run", "--config", str(RECIPE)]
    command += [arg for path in inputs for arg in ("--input", path)]
    command += ["--out", str(out), "--master", master]
    for setting in CLASSIFIER:
        command += ["--set", setting]
    if export is not None:
        command += ["--set", f"export.out={export}"]
    # Spark's 200 shuffle partitions would be 200 tasks of nothing per shuffle on 2 cores (183 s vs 43 s).
    settings = ["spark.sql.shuffle.partitions=4", "spark.driver.memory=1g", *conf]
    return command + [arg for item in settings for arg in ("--spark-conf", item)]


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    # Its own session, so the driver's JVM can be killed with it as one process group.
    with open(log, "wb") as out:
        return subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _wait_for(what: str, condition: Callable[[], Any], process: subprocess.Popen[bytes], log: Path) -> Any:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process.poll() is not None:
            pytest.fail(f"driver exited ({process.returncode}) before {what}:\n{_tail(log)}")
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}:\n{_tail(log)}")


def _finish(process: subprocess.Popen[bytes], log: Path) -> None:
    try:
        code = process.wait(WAIT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(f"driver still running after {WAIT:.0f} s:\n{_tail(log)}")
    assert code == 0, _tail(log)


# --- the fixture itself: it stops what it started, whatever happens (these run before the shared cluster) --


def _processes_in(directory: Path) -> list[int]:
    return [pid for pid in all_pids() if (cwd(pid) or "").startswith(str(directory)) and alive(pid)]


def test_a_failing_test_body_still_stops_every_cluster_process(tmp_path: Path) -> None:
    started: list[int] = []
    with (
        pytest.raises(RuntimeError, match="test body failed"),
        standalone_cluster(workers=1, cores=1, memory="512m", work_dir=tmp_path, quick_jvm=True) as running,
    ):
        started = [running.master_pid, *running.worker_pids]
        raise RuntimeError("test body failed")
    assert len(started) == 2 and not any(alive(pid) for pid in started)
    assert not _processes_in(tmp_path)


def test_a_worker_that_cannot_start_fails_fast_and_leaves_nothing(tmp_path: Path) -> None:
    with (
        pytest.raises(ClusterError, match="worker-0"),
        standalone_cluster(workers=1, memory="lots", work_dir=tmp_path, quick_jvm=True),
    ):
        pytest.fail("a worker with memory='lots' registered")
    assert not _processes_in(tmp_path)


# --- the reference and the faulted cluster run ----------------------------------------------------------


@pytest.fixture(scope="module")
def reference(shared_warcs: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same command in Spark local mode."""
    root = tmp_path_factory.mktemp("reference")
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    if "JAVA_HOME" not in env and os.path.isdir(JAVA_17):
        env["JAVA_HOME"] = JAVA_17
    log = root / "driver.log"
    _finish(_start(_run_command(shared_warcs, root / "run", "local[2]"), env, log), log)
    return root / "run"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneCluster]:
    with standalone_cluster(
        workers=2, cores=1, memory="2g", work_dir=tmp_path_factory.mktemp("cluster"), quick_jvm=True
    ) as running:
        yield running
    assert not any(alive(pid) for pid in [running.master_pid, *running.worker_pids]), "a daemon survived stop()"
    assert not running.stray_pids(), "an executor or Python worker survived stop()"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, shared_warcs: list[str]) -> Iterator[S3Server]:
    """The shared WARCs as `s3://warcs/crawl/<directory>/<file>`, and an empty bucket for the export."""
    with s3_server(tmp_path_factory.mktemp("s3")) as running:
        running.create_bucket(BUCKET)
        running.create_bucket(EXPORTS)
        for path in map(Path, shared_warcs):
            running.upload(path, BUCKET, f"crawl/{path.parent.name}/{path.name}")
        yield running


@dataclass
class FaultedRun:
    run_dir: Path
    export_copy: Path  # the export's objects, downloaded
    first_app: str
    victim: int
    victim_alive_after: bool
    extract_existed_at_executor_kill: bool
    unfinished_at_driver_kill: list[str]
    driver_group_after_kill: list[int]
    manifests_at_driver_kill: dict[str, bytes]
    driver_killed_at: float
    lost_tasks: list[dict[str, Any]]
    seconds: dict[str, float] = field(default_factory=dict)


def _new_app(cluster: StandaloneCluster, before: set[str]) -> str | None:
    fresh = [app for app in cluster.app_ids() if app not in before]
    return fresh[0] if fresh else None


def _executor_running_python(cluster: StandaloneCluster, app_id: str) -> int | None:
    """An executor of `app_id` whose Python daemon has forked a worker, i.e. it is running a step."""
    for pid in cluster.executor_pids(app_id):
        daemons = [p for p in descendants(pid) if p != pid and "pyspark.daemon" in cmdline(p)]
        if len(daemons) >= 2:  # the daemon and at least one forked worker
            return pid
    return None


def _event_log(directory: Path) -> list[dict[str, Any]]:
    events = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and "appstatus" not in p.name):
        for line in path.read_text().splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # the last line of a log whose driver was killed mid-write
    return events


def _stage_names(run_dir: Path) -> list[str]:
    return sorted(str(p.parent.relative_to(run_dir)) for p in run_dir.rglob(MANIFEST_NAME))


@pytest.fixture(scope="module")
def faulted_run(cluster: StandaloneCluster, server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> FaultedRun:
    """`curate run` on the cluster from and to S3; SIGKILL an executor during the extract stage, then the
    driver once 03_near_dedup has committed; then run the same command again to the end."""
    root = tmp_path_factory.mktemp("faulted")
    run_dir, events = root / "run", root / "events"
    events.mkdir()
    env = server.env(cluster.env)
    command = _run_command(
        [f"s3://{BUCKET}/crawl/*/*.warc.gz"],
        run_dir,
        cluster.master_url,
        *[f"{key}={value}" for key, value in cluster.spark_conf.items()],
        # No instance role here: the executors get the keys as a cluster without one would give them. (The
        # endpoint and region are passed on by curate itself.)
        *[f"spark.executorEnv.{name}={env[name]}" for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")],
        "spark.eventLog.enabled=true",
        f"spark.eventLog.dir={events.as_uri()}",
        "spark.eventLog.compress=false",
        export=S3_EXPORT,
    )
    started = time.monotonic()
    log = root / "driver-1.log"
    before = set(cluster.app_ids())
    driver = _start(command, env, log)
    app_id = _wait_for("the application's executors", lambda: _new_app(cluster, before), driver, log)
    victim = _wait_for("an executor to run a step", lambda: _executor_running_python(cluster, app_id), driver, log)
    extract_existed = (run_dir / EXTRACT).exists()
    os.kill(victim, signal.SIGKILL)
    killed_executor = time.monotonic()

    _wait_for(f"{NEAR_DEDUP} to commit", (run_dir / NEAR_DEDUP / MANIFEST_NAME).exists, driver, log)
    manifests = {stage: (run_dir / stage / MANIFEST_NAME).read_bytes() for stage in _stage_names(run_dir)}
    os.killpg(driver.pid, signal.SIGKILL)
    killed_driver = time.monotonic()
    driver.wait(30)
    deadline = time.monotonic() + 30
    while process_group(driver.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    group_left = process_group(driver.pid)

    log = root / "driver-2.log"
    _finish(_start(command, env, log), log)
    export_copy = root / "export"
    for key in server.keys(EXPORTS, "corpus/"):
        (export_copy / key.removeprefix("corpus/")).parent.mkdir(parents=True, exist_ok=True)
        server.client().download_file(EXPORTS, key, str(export_copy / key.removeprefix("corpus/")))
    run = FaultedRun(
        run_dir=run_dir,
        export_copy=export_copy,
        first_app=app_id,
        victim=victim,
        victim_alive_after=alive(victim),
        extract_existed_at_executor_kill=extract_existed,
        unfinished_at_driver_kill=[s for s in _stage_names(run_dir) if s not in manifests],
        driver_group_after_kill=group_left,
        manifests_at_driver_kill=manifests,
        driver_killed_at=time.time() - (time.monotonic() - killed_driver),
        lost_tasks=[
            e
            for e in _event_log(events)
            if e.get("Event") == "SparkListenerTaskEnd" and e["Task End Reason"]["Reason"] == "ExecutorLostFailure"
        ],
        seconds={
            "start_to_executor_kill": round(killed_executor - started, 1),
            "executor_kill_to_driver_kill": round(killed_driver - killed_executor, 1),
            "rerun": round(time.monotonic() - killed_driver, 1),
        },
    )
    print(f"faulted cluster run: {run.seconds}")
    return run


# --- comparing two runs ---------------------------------------------------------------------------------


def _file_name(path: str) -> str:
    """`<directory>/<file>` of a WARC path: the same for a local path and for its copy on S3."""
    return "/".join(path.split("/")[-2:]) if path.endswith(".warc.gz") else path


def _comparable(value: Any) -> Any:
    """A manifest without what differs by nature between two runs, its WARC paths as `<directory>/<file>`."""
    if isinstance(value, dict):
        return {
            _file_name(k): _comparable(v)
            for k, v in value.items()
            if k not in VOLATILE and k != "seconds" and not k.endswith("_seconds")
        }
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    return _file_name(value) if isinstance(value, str) else value


def _without_sizes(export_manifest: dict[str, Any]) -> dict[str, Any]:
    """An export manifest without its byte sizes: each row holds its WARC's path, a longer string in the
    reference (a local path) than on the cluster (an s3:// key), so equal pages are not equal bytes. The rows
    themselves are compared with the paths cut to `<directory>/<file>`."""
    sizes = {"bytes", "estimated_raw_bytes", "compressed_per_raw_byte"}

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in sizes}
        return [strip(v) for v in value] if isinstance(value, list) else value

    stripped: dict[str, Any] = strip(export_manifest)
    return stripped


def _sorted_rows(table: pa.Table) -> list[dict[str, Any]]:
    if "warc_path" in table.column_names:
        names = pc.replace_substring_regex(table.column("warc_path"), r"^.*/([^/]+/[^/]+)$", r"\1")
        table = table.set_column(table.schema.get_field_index("warc_path"), "warc_path", names)
    # Every primitive column takes part in the order, so the order is total whatever the dataset's key is.
    keys = [f.name for f in table.schema if not pa.types.is_nested(f.type) and not pa.types.is_binary(f.type)]
    return table.sort_by([(key, "ascending") for key in keys]).to_pylist()


def _datasets(run_dir: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for part in run_dir.rglob("*.parquet"):
        if not any(p.startswith(".") for p in part.relative_to(run_dir).parts):
            found.setdefault(str(part.parent.relative_to(run_dir)), []).append(part)
    return found


def _read(parts: list[Path]) -> pa.Table:
    return ds.dataset([str(p) for p in sorted(parts)], format="parquet").to_table()


def test_every_stage_of_the_cluster_run_on_s3_equals_the_local_mode_run_on_local_paths(
    faulted_run: FaultedRun, reference: Path
) -> None:
    run_dir = faulted_run.run_dir
    stages = _stage_names(reference)
    assert _stage_names(run_dir) == stages and len(stages) >= 8, stages
    for stage in stages:
        got = json.loads((run_dir / stage / MANIFEST_NAME).read_text())
        want = json.loads((reference / stage / MANIFEST_NAME).read_text())
        assert got["balanced"], stage
        assert got["runner"].startswith("spark:spark://127.0.0.1:"), stage
        assert _comparable(got) == _comparable(want), f"{stage}: manifests differ"
    per_file = json.loads((run_dir / EXTRACT / MANIFEST_NAME).read_text())["extra"]["per_file"]
    assert len(per_file) == 6 and all(path.startswith(f"s3://{BUCKET}/crawl/") for path in per_file)

    datasets = _datasets(reference)
    exported = {name: parts for name, parts in datasets.items() if name.startswith("export")}
    assert list(exported) == ["export/data"] and f"{EXTRACT}/_rejected" in datasets
    assert _datasets(run_dir).keys() == datasets.keys() - exported.keys(), "the export went to S3, not the run"
    for name, parts in datasets.items():
        where = faulted_run.export_copy if name in exported else run_dir
        got_rows = _sorted_rows(_read(_datasets(where)[name.removeprefix("export/")]))
        assert got_rows == _sorted_rows(_read(parts)), f"{name} differs"
    manifests = {"export/manifest.json": faulted_run.export_copy / "manifest.json", "run.json": run_dir / "run.json"}
    for document, path in manifests.items():
        got, want = json.loads(path.read_text()), json.loads((reference / document).read_text())
        got.get("config", {}).get("export", {}).pop("out", None)  # where it went: the one setting that differs
        want.get("config", {}).get("export", {}).pop("out", None)
        if document.startswith("export/"):
            assert want["rows"] >= EXPORTED_AT_LEAST, "too few pages exported to compare the exports"
            got, want = _without_sizes(got), _without_sizes(want)
        assert _comparable(got) == _comparable(want), f"{document} differs"
    assert sorted(p.name for p in faulted_run.export_copy.iterdir()) == sorted([CARD_FILE, "data", "manifest.json"])


def test_an_executor_killed_mid_stage_is_replaced_and_its_task_retried(
    faulted_run: FaultedRun, cluster: StandaloneCluster
) -> None:
    assert not faulted_run.extract_existed_at_executor_kill, "the extract stage had finished before the kill"
    assert not faulted_run.victim_alive_after
    assert faulted_run.lost_tasks, "no task was lost with the executor: the kill did not hit a running task"
    # The standalone master launched a replacement: the first application had three executors in all.
    assert len(cluster.executor_dirs(faulted_run.first_app)) >= 3


def test_a_killed_driver_resumes_after_the_last_finished_stage(faulted_run: FaultedRun) -> None:
    assert set(faulted_run.manifests_at_driver_kill) == set(RESUMED_AFTER), "the kill did not land after 03"
    assert faulted_run.unfinished_at_driver_kill, "every stage had finished before the driver was killed"
    assert not faulted_run.driver_group_after_kill, "the driver's JVM outlived it"
    run_dir = faulted_run.run_dir
    # Byte-identical manifests (same `created`, same `wall_seconds`): those stages were skipped, not redone.
    for stage, manifest in faulted_run.manifests_at_driver_kill.items():
        assert (run_dir / stage / MANIFEST_NAME).read_bytes() == manifest, f"{stage} was redone"
    for stage in faulted_run.unfinished_at_driver_kill:
        created = json.loads((run_dir / stage / MANIFEST_NAME).read_text())["created"]
        assert created >= time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(faulted_run.driver_killed_at))), stage
    assert not list(run_dir.rglob("*.tmp")), "an uncommitted stage directory was left behind"
