"""Inputs on S3 and on a non-local Hadoop scheme, and exports to S3, against a real S3-compatible server.

moto's server mode runs on 127.0.0.1 with authentication on (tests/support/s3_server.py); the shared WARCs
are uploaded to it. `curate ingest` reads them from `s3://` (streamed by the executors through pyarrow) and
from `viewfs://` (the issue's command: Spark's binaryFile through Hadoop), and both must give the documents
of the same files read from local paths. `curate export` to `s3://` must give shards that pyarrow and
DuckDB read back equal to a local export. User mistakes exit 2 with one line and write nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from support.cluster import JAVA_17, free_port
from support.s3_server import S3Server, s3_server

from curate.errors import ConfigError, CurateError
from curate.io.fs import expand_inputs
from curate.manifest import MANIFEST_NAME
from curate.stage import RunContext
from curate.stages.export import MANIFEST_FILE, publish_to_object_store, run_export
from curate.stages.ingest import EXTRACT_STAGE, URL_DEDUP_STAGE, run_ingest

pytestmark = [pytest.mark.spark, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "warcs"
EXPORTS = "exports"
PREFIX = "crawl"
STAGES = (EXTRACT_STAGE, URL_DEDUP_STAGE)


@pytest.fixture(scope="module")
def local_warcs(shared_data: Path) -> list[Path]:
    paths = [Path(p) for p in expand_inputs([str(shared_data / "cc-warc/*/*.warc.gz"), str(shared_data / "web-warc")])]
    assert len(paths) == 6
    return paths


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, local_warcs: list[Path]) -> Iterator[S3Server]:
    with s3_server(tmp_path_factory.mktemp("s3")) as running:
        running.create_bucket(BUCKET)
        running.create_bucket(EXPORTS)
        for path in local_warcs:
            running.upload(path, BUCKET, f"{PREFIX}/{path.parent.name}/{path.name}")
        yield running


@pytest.fixture(scope="module")
def s3_env(server: S3Server, spark: Any) -> Iterator[dict[str, str]]:
    """This process and the shared session's Python workers talk to the server (as a CLI run's would)."""
    env = server.env({})
    workers = spark.sparkContext.environment
    saved = dict(workers)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        workers.update(env)
        try:
            yield env
        finally:
            workers.clear()
            workers.update(saved)


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {**env, "PYSPARK_PYTHON": sys.executable, "JAVA_HOME": os.environ.get("JAVA_HOME", JAVA_17)}
    return subprocess.run(
        [sys.executable, "-m", "curate.cli.main", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def _rows(run_dir: Path, stage: str) -> list[dict[str, Any]]:
    """Every row of a stage, kept and rejected, without `warc_path` (it names the file as the input did)."""
    rows = []
    for part in (run_dir / stage, run_dir / stage / "_rejected"):
        if not part.is_dir():
            continue
        table = ds.dataset(part, format="parquet", ignore_prefixes=[".", "_"]).to_table()
        rows += [
            {"_rejected": part.name == "_rejected", **row} for row in table.drop_columns(["warc_path"]).to_pylist()
        ]
    return sorted(rows, key=lambda row: json.dumps(row, default=str, sort_keys=True))


def _manifest(run_dir: Path, stage: str) -> dict[str, Any]:
    return json.loads((run_dir / stage / MANIFEST_NAME).read_text())


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory, spark: Any, local_warcs: list[Path]) -> Path:
    run_dir = tmp_path_factory.mktemp("local-run")
    run_ingest(RunContext(str(run_dir)).use_session(spark), [str(p) for p in local_warcs])
    return run_dir


@pytest.fixture(scope="module")
def s3_run(tmp_path_factory: pytest.TempPathFactory, spark: Any, s3_env: dict[str, str]) -> Path:
    """The shared local-mode session's executors stream the WARCs from the server."""
    run_dir = tmp_path_factory.mktemp("s3-run") / "run"
    run_ingest(RunContext(str(run_dir)).use_session(spark), expand_inputs([f"s3://{BUCKET}/{PREFIX}/*/*.warc.gz"]))
    return run_dir


def test_s3_ingest_on_spark_gives_the_documents_of_the_local_paths(s3_run: Path, local_run: Path) -> None:
    for stage in STAGES:
        assert _rows(s3_run, stage) == _rows(local_run, stage), stage
    manifest = _manifest(s3_run, EXTRACT_STAGE)
    assert manifest["rows_in"] == 1118 and manifest["balanced"]
    # Per-file accounting names the files as given: the S3 URIs the glob matched.
    assert sorted(manifest["extra"]["per_file"]) == [f"s3://{BUCKET}/{PREFIX}/{key}" for key in _keys_below_prefix()]


def test_curate_ingest_command_with_an_s3_glob_gives_the_local_documents(
    server: S3Server, local_run: Path, tmp_path: Path
) -> None:
    # --local-runner: the command's own path (glob, endpoint, streaming, accounting) without a second JVM; the
    # executors' side is the test above, and the viewfs test below runs the command on Spark.
    run_dir = tmp_path / "run"
    pattern = f"s3://{BUCKET}/{PREFIX}/*/*.warc.gz"
    result = _cli(["ingest", "--local-runner", "--input", pattern, "--out", str(run_dir)], server.env())
    assert result.returncode == 0, result.stderr[-3000:]
    for stage in STAGES:
        assert _rows(run_dir, stage) == _rows(local_run, stage), stage


def _keys_below_prefix() -> list[str]:
    return [
        "daft/example.warc.gz",
        "dolma/sample-0000.warc.gz",
        "ia-heritrix-sample-2008/web_sample.warc.gz",
        "resiliparse/warcfile.warc.gz",
        "ukwa-wikipedia-sopa-2012/sopa-wikipedia-homepage.warc.gz",
        "whirlwind/whirlwind.warc.gz",
    ]


def test_s3a_names_the_same_objects_and_globs_match_like_a_shell(s3_env: dict[str, str]) -> None:
    s3 = expand_inputs([f"s3://{BUCKET}/{PREFIX}/*/*.warc.gz"])
    assert [p.removeprefix(f"s3://{BUCKET}/{PREFIX}/") for p in s3] == _keys_below_prefix()
    assert expand_inputs([f"s3a://{BUCKET}/{PREFIX}/*/*.warc.gz"]) == [p.replace("s3://", "s3a://") for p in s3]
    # A directory is searched for WARC files; `*` stays within one level, `**` spans them.
    assert expand_inputs([f"s3://{BUCKET}/{PREFIX}/"]) == s3
    assert expand_inputs([f"s3://{BUCKET}/**/*.warc.gz"]) == s3
    assert expand_inputs([f"s3://{BUCKET}/{PREFIX}/d*/*.gz"]) == [s3[0], s3[1]]


def test_viewfs_ingest_gives_the_documents_of_the_local_paths(
    tmp_path: Path, shared_data: Path, local_run: Path
) -> None:
    run_dir = tmp_path / "run"
    mount = f"spark.hadoop.fs.viewfs.mounttable.c.link./data={shared_data.resolve().as_uri()}"
    args = ["ingest", "--input", "viewfs://c/data/cc-warc/*/*.warc.gz", "--input", "viewfs://c/data/web-warc/*/*.gz"]
    args += ["--out", str(run_dir), "--spark-conf", mount, "--spark-conf", "spark.sql.shuffle.partitions=2"]
    result = _cli(args, dict(os.environ))
    assert result.returncode == 0, result.stderr[-3000:]
    for stage in STAGES:
        assert _rows(run_dir, stage) == _rows(local_run, stage), stage
    assert all(path.startswith("viewfs://c/data/") for path in _manifest(run_dir, EXTRACT_STAGE)["extra"]["per_file"])


def _s3_table(server: S3Server, key: str, tmp_path: Path) -> tuple[pa.Table, pa.Table]:
    """The object read by pyarrow straight from S3, and by DuckDB from a downloaded copy of its bytes."""
    import duckdb
    import pyarrow.fs as pafs

    filesystem = pafs.S3FileSystem(
        endpoint_override=server.endpoint,
        access_key=server.access_key,
        secret_key=server.secret_key,
        region="us-east-1",
    )
    with filesystem.open_input_file(f"{EXPORTS}/{key}") as handle:
        by_pyarrow = pq.read_table(handle)
    copy = tmp_path / key.replace("/", "_")
    server.client().download_file(EXPORTS, key, str(copy))
    by_duckdb = duckdb.sql(f"select * from read_parquet('{copy}')").fetch_arrow_table()
    return by_pyarrow, by_duckdb


def test_export_to_s3_reads_back_equal_to_the_local_export(
    s3_run: Path, spark: Any, server: S3Server, s3_env: dict[str, str], tmp_path: Path
) -> None:
    run_dir = s3_run
    ctx = RunContext(str(run_dir)).use_session(spark)
    local = run_export(ctx, str(tmp_path / "local-export"))
    remote = run_export(ctx, f"s3://{EXPORTS}/corpus")
    assert [(s["name"], s["rows"]) for s in remote["shards"]] == [(s["name"], s["rows"]) for s in local["shards"]]
    assert remote["doc_ids_sha256"] == local["doc_ids_sha256"] and remote["rows"] == local["rows"] > 0
    keys = server.keys(EXPORTS, "corpus/")
    assert keys == sorted(["corpus/" + MANIFEST_FILE, *(f"corpus/{s['path']}" for s in remote["shards"])])
    assert json.loads(server.client().get_object(Bucket=EXPORTS, Key="corpus/" + MANIFEST_FILE)["Body"].read()) == (
        json.loads(json.dumps(remote))
    )
    assert not list(run_dir.glob("_export-*")), "the staging copy in the run directory is removed"
    for shard in remote["shards"]:
        expected = pq.read_table(tmp_path / "local-export" / shard["path"])
        by_pyarrow, by_duckdb = _s3_table(server, f"corpus/{shard['path']}", tmp_path)
        assert by_pyarrow.equals(expected)
        assert by_duckdb.to_pylist() == expected.to_pylist()
    # Unchanged source and config: the export on S3 is recognised from its manifest and not redone.
    assert run_export(ctx, f"s3://{EXPORTS}/corpus")["created"] == remote["created"]

    # A re-export whose read-back does not match its checksum fails and leaves no manifest behind (the old
    # one is removed before the first upload). The mismatch is made by announcing a wrong sha256.
    wrong = json.loads(json.dumps(local))
    wrong["shards"][-1]["sha256"] = "0" * 64
    with pytest.raises(CurateError, match=r"read back as .* the upload is corrupt"):
        publish_to_object_store(str(tmp_path / "local-export"), f"s3://{EXPORTS}/corpus", wrong)
    assert "corpus/" + MANIFEST_FILE not in server.keys(EXPORTS, "corpus/")


def _one_line_exit_2(result: subprocess.CompletedProcess[str], *names: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    for name in names:
        assert name in lines[0], lines[0]


@pytest.mark.parametrize(
    ("case", "pattern", "env_change", "expected"),
    [
        ("wrong secret key", f"s3://{BUCKET}/{PREFIX}/*/*.warc.gz", {"AWS_SECRET_ACCESS_KEY": "wrong"}, "credentials"),
        (
            "unknown access key",
            f"s3://{BUCKET}/{PREFIX}/*/*.warc.gz",
            {"AWS_ACCESS_KEY_ID": "AKIANOBODY"},
            "credentials",
        ),
        ("missing bucket", "s3://no-such-bucket/crawl/*.warc.gz", {}, "bucket 'no-such-bucket' does not exist"),
        ("unreachable endpoint", f"s3://{BUCKET}/{PREFIX}/*.warc.gz", {"AWS_ENDPOINT_URL": "unreachable"}, "connect"),
        ("missing next to existing", f"s3://{BUCKET}/{PREFIX}/daft/nothing.warc.gz", {}, "matched no WARC files"),
    ],
)
def test_s3_input_mistakes_exit_2_with_one_line_and_write_nothing(
    server: S3Server, tmp_path: Path, case: str, pattern: str, env_change: dict[str, str], expected: str
) -> None:
    if env_change.get("AWS_ENDPOINT_URL") == "unreachable":
        env_change = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    existing = f"s3://{BUCKET}/{PREFIX}/whirlwind/whirlwind.warc.gz"
    out = tmp_path / "run"
    result = _cli(["ingest", "--input", existing, "--input", pattern, "--out", str(out)], server.env(**env_change))
    _one_line_exit_2(result, expected if case != "missing next to existing" else pattern)
    if case != "missing next to existing":
        assert pattern in result.stderr or existing in result.stderr
    assert not out.exists()


def test_a_missing_local_input_next_to_existing_ones_exits_2(shared_data: Path, tmp_path: Path) -> None:
    missing = str(shared_data / "cc-warc/whirlwind/no-such.warc.gz")
    args = ["ingest", "--local-runner", "--input", str(shared_data / "cc-warc/whirlwind/whirlwind.warc.gz")]
    result = _cli([*args, "--input", missing, "--out", str(tmp_path / "run")], dict(os.environ))
    _one_line_exit_2(result, missing, "matched no WARC files")
    assert not (tmp_path / "run").exists()


def test_a_scheme_typo_is_one_line_naming_the_path(spark: Any) -> None:
    with pytest.raises(ConfigError, match=r"^--input s4://warcs/a\.warc\.gz: .*No FileSystem for scheme") as caught:
        expand_inputs(["s4://warcs/a.warc.gz"])
    assert "\n" not in str(caught.value)


def test_export_to_a_missing_bucket_exits_2_before_any_work(s3_run: Path, server: S3Server) -> None:
    before = sorted(p.name for p in s3_run.iterdir())
    result = _cli(["export", "--run", str(s3_run), "--out", "s3://no-such-bucket/corpus"], server.env())
    _one_line_exit_2(result, "s3://no-such-bucket/corpus", "does not exist")
    assert sorted(p.name for p in s3_run.iterdir()) == before
