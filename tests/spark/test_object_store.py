"""Inputs on S3 and on a non-local Hadoop scheme, and exports to S3, against a real S3-compatible server.

One moto server per module (tests/support/s3_server.py: 127.0.0.1, authentication on) holds three of the
shared WARCs (two real Common Crawl files and the one-gzip-member quirk). One reference ingest of the same
files on local paths is compared, row by row, with every run that reads them another way: `curate ingest`
from `s3://` on the suite's Spark session (the executors stream from the server) and under the local runner,
and the issue's `viewfs://` command (Spark's binaryFile through Hadoop). `curate export` to `s3://` must give
the shards, dataset card and manifest of a local export, read back by pyarrow, DuckDB and HF datasets. User
mistakes exit 2 with one line naming the path and the cause, and write nothing.

The commands run in this process (`curate.cli.main.main`, the console script's own entry) on the suite's
session: a second JVM per command would cost more than the work. `curate run` with `s3://` inputs and an
`s3://` export, on a standalone cluster, is in tests/cluster/test_cluster.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from support.cluster import free_port
from support.s3_server import S3Server, s3_server

from curate.cli.main import main
from curate.errors import ConfigError, CurateError
from curate.io.fs import expand_inputs
from curate.manifest import MANIFEST_NAME
from curate.run_layout import RunLayout
from curate.stage import RunContext
from curate.stages.dataset_card import CARD_FILE, dataset_card
from curate.stages.export import MANIFEST_FILE, publish_to_object_store
from curate.stages.ingest import run_ingest
from curate.stages.registry import EXTRACT, URL_DEDUP

pytestmark = [pytest.mark.spark, pytest.mark.timeout(300)]

BUCKET = "warcs"
EXPORTS = "exports"
PREFIX = "crawl"
# Shared WARCs, as `<directory>/<file>` below ../shared/data: bucket keys are `crawl/<directory>/<file>`.
INPUTS = (
    "cc-warc/resiliparse/warcfile.warc.gz",
    "cc-warc/whirlwind/whirlwind.warc.gz",
    "web-warc/daft/example.warc.gz",
)
KEYS = sorted(f"{PREFIX}/{path.split('/', 1)[1]}" for path in INPUTS)
S3_GLOB = f"s3://{BUCKET}/{PREFIX}/*/*.warc.gz"
STAGES = (EXTRACT.name(), URL_DEDUP.name())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Iterator[S3Server]:
    with s3_server(tmp_path_factory.mktemp("s3")) as running:
        running.create_bucket(BUCKET)
        running.create_bucket(EXPORTS)
        for path in INPUTS:
            running.upload(shared_data / path, BUCKET, f"{PREFIX}/{path.split('/', 1)[1]}")
        yield running


@pytest.fixture(scope="module")
def s3_env(server: S3Server, spark: Any) -> Iterator[dict[str, str]]:
    """This process and the session's Python workers see the server's endpoint and keys, as the driver and
    the executors of a command started with them in its environment would."""
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


def _curate(spark: Any, *args: str) -> int:
    """`curate ARGS` in this process: its exit code (0 when `main` returns)."""
    partitions = spark.conf.get("spark.sql.shuffle.partitions")
    try:
        main(list(args))
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", partitions)  # the CLI's session builder may resize it
    return 0


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


def _assert_same_documents(run_dir: Path, reference: Path) -> None:
    for stage in STAGES:
        assert _rows(run_dir, stage) == _rows(reference, stage), stage


def _per_file(run_dir: Path) -> list[str]:
    return sorted(json.loads((run_dir / EXTRACT.name() / MANIFEST_NAME).read_text())["extra"]["per_file"])


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory, spark: Any, shared_data: Path) -> Path:
    run_dir = tmp_path_factory.mktemp("local-run")
    run_ingest(RunContext(str(run_dir)).use_session(spark), [str(shared_data / path) for path in INPUTS])
    assert len(_rows(run_dir, EXTRACT.name())) > 80  # every record of the three files, kept or dropped
    return run_dir


@pytest.fixture(scope="module")
def s3_run(tmp_path_factory: pytest.TempPathFactory, spark: Any, s3_env: dict[str, str]) -> Path:
    run_dir = tmp_path_factory.mktemp("s3-run") / "run"
    assert _curate(spark, "ingest", "--input", S3_GLOB, "--out", str(run_dir)) == 0
    return run_dir


def test_curate_ingest_from_s3_on_spark_gives_the_documents_of_the_local_paths(s3_run: Path, local_run: Path) -> None:
    _assert_same_documents(s3_run, local_run)
    manifest = json.loads((s3_run / EXTRACT.name() / MANIFEST_NAME).read_text())
    assert manifest["balanced"] and manifest["runner"].startswith("spark:")
    # Per-file accounting names the files as given: the S3 URIs the glob matched.
    assert _per_file(s3_run) == [f"s3://{BUCKET}/{key}" for key in KEYS]


def test_curate_ingest_from_s3_under_the_local_runner_gives_the_same_documents(
    spark: Any,
    server: S3Server,
    s3_env: dict[str, str],
    local_run: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # The endpoint given as an option rather than in the environment.
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    run_dir = tmp_path / "run"
    args = ["--local-runner", "--input", S3_GLOB, "--out", str(run_dir), "--s3-endpoint", server.endpoint]
    assert _curate(spark, "ingest", *args) == 0
    _assert_same_documents(run_dir, local_run)


def test_s3a_names_the_same_objects_and_globs_match_like_a_shell(s3_env: dict[str, str]) -> None:
    s3 = expand_inputs([S3_GLOB])
    assert s3 == [f"s3://{BUCKET}/{key}" for key in KEYS]
    assert expand_inputs([S3_GLOB.replace("s3://", "s3a://")]) == [p.replace("s3://", "s3a://") for p in s3]
    # A directory is searched for WARC files; `*` stays within one level, `**` spans them.
    assert expand_inputs([f"s3://{BUCKET}/{PREFIX}/"]) == s3
    assert expand_inputs([f"s3://{BUCKET}/**/*.warc.gz"]) == s3
    assert expand_inputs([f"s3://{BUCKET}/{PREFIX}/[rw]*/*.gz"]) == s3[1:]
    with pytest.raises(ConfigError, match="matched no WARC files"):
        expand_inputs([f"s3://{BUCKET}/*.warc.gz"])


def test_the_issues_viewfs_command_gives_the_documents_of_the_local_paths(
    spark: Any, shared_data: Path, local_run: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    mount = f"spark.hadoop.fs.viewfs.mounttable.c.link./data={shared_data.resolve().as_uri()}"
    inputs = ["--input", "viewfs://c/data/cc-warc/*/*.warc.gz", "--input", "viewfs://c/data/web-warc/daft/*.gz"]
    assert _curate(spark, "ingest", *inputs, "--out", str(run_dir), "--spark-conf", mount) == 0
    _assert_same_documents(run_dir, local_run)
    assert _per_file(run_dir) == sorted(f"viewfs://c/data/{path}" for path in INPUTS)


# --- export to S3 ----------------------------------------------------------------------------------------


def _download(server: S3Server, prefix: str, target: Path) -> list[str]:
    """Every object below `prefix` copied into `target` (same relative paths); their relative paths."""
    names = []
    for key in server.keys(EXPORTS, prefix):
        relative = key.removeprefix(prefix)
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        server.client().download_file(EXPORTS, key, str(target / relative))
        names.append(relative)
    return names


def _read_with_every_reader(copy: Path, s3_root: str, server: S3Server, tmp_path: Path) -> dict[str, list[Any]]:
    """The exported rows as pyarrow (straight from S3), DuckDB and HF datasets (from the downloaded copy:
    DuckDB's S3 support is an extension it downloads) see them, each sorted by doc_id."""
    import datasets
    import duckdb
    import pyarrow.fs as pafs

    filesystem = pafs.S3FileSystem(
        endpoint_override=server.endpoint,
        access_key=server.access_key,
        secret_key=server.secret_key,
        region="us-east-1",
    )
    shards = sorted(p.relative_to(copy).as_posix() for p in (copy / "data").glob("*.parquet"))
    by_pyarrow = pa.concat_tables(pq.read_table(f"{s3_root}/{name}", filesystem=filesystem) for name in shards)
    by_duckdb = duckdb.sql(f"select * from read_parquet('{copy}/data/*.parquet') order by doc_id").fetch_arrow_table()
    with pytest.MonkeyPatch.context() as patch:  # offline, cache in the test's directory
        patch.setenv("HF_DATASETS_OFFLINE", "1")
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf")
        by_datasets = datasets.load_dataset(str(copy), cache_dir=str(tmp_path / "hf"))["train"]
    return {
        "pyarrow": by_pyarrow.sort_by("doc_id").to_pylist(),
        "duckdb": by_duckdb.to_pylist(),
        "datasets": sorted(by_datasets.to_list(), key=lambda row: row["doc_id"]),
    }


def test_export_to_s3_reads_back_equal_to_the_local_export(
    s3_run: Path, spark: Any, server: S3Server, s3_env: dict[str, str], tmp_path: Path
) -> None:
    local_out, remote_out = tmp_path / "local-export", f"s3://{EXPORTS}/corpus"
    assert _curate(spark, "export", "--run", str(s3_run), "--out", str(local_out)) == 0
    assert _curate(spark, "export", "--run", str(s3_run), "--out", remote_out) == 0
    local = json.loads((local_out / MANIFEST_FILE).read_text())
    copy = tmp_path / "copy"
    names = _download(server, "corpus/", copy)
    remote = json.loads((copy / MANIFEST_FILE).read_text())
    assert sorted(names) == sorted([MANIFEST_FILE, CARD_FILE, *(s["path"] for s in local["shards"])])
    assert [(s["path"], s["rows"]) for s in remote["shards"]] == [(s["path"], s["rows"]) for s in local["shards"]]
    assert remote["doc_ids_sha256"] == local["doc_ids_sha256"] and remote["rows"] == local["rows"] > 0
    assert not list(s3_run.glob("_export-*")), "the staging copy in the run directory is removed"
    assert (copy / CARD_FILE).read_text() == dataset_card(RunLayout.load(str(s3_run)), remote)

    expected = pq.read_table(local_out / "data").sort_by("doc_id").to_pylist()
    for reader, rows in _read_with_every_reader(copy, f"{EXPORTS}/corpus", server, tmp_path).items():
        assert rows == expected, reader

    # Unchanged source and config: the export on S3 is recognised from its manifest and not redone.
    assert _curate(spark, "export", "--run", str(s3_run), "--out", remote_out) == 0
    assert server.client().get_object(Bucket=EXPORTS, Key="corpus/" + MANIFEST_FILE)["Body"].read() == (
        (copy / MANIFEST_FILE).read_bytes()
    )
    # A re-export whose read-back does not match its checksum fails and leaves no manifest behind (the old
    # one is removed before the first upload). The mismatch is made by announcing a wrong sha256.
    wrong = json.loads(json.dumps(local))
    wrong["shards"][-1]["sha256"] = "0" * 64
    with pytest.raises(CurateError, match=r"read back as .* the upload is corrupt"):
        publish_to_object_store(str(local_out), remote_out, wrong)
    assert "corpus/" + MANIFEST_FILE not in server.keys(EXPORTS, "corpus/")


# --- mistakes: one line naming the path and the cause, exit 2, nothing written ------------------------------


def _one_line_exit_2(code: int, stderr: str, *names: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, stderr[-2000:])
    for name in names:
        assert name in lines[0], lines[0]


EXISTING = f"s3://{BUCKET}/{KEYS[-1]}"


@pytest.mark.parametrize(
    ("pattern", "env_change", "expected"),
    [
        pytest.param(S3_GLOB, {"AWS_SECRET_ACCESS_KEY": "wrong"}, "check the credentials", id="wrong secret key"),
        pytest.param("s3://no-such-bucket/crawl/*.warc.gz", {}, "bucket 'no-such-bucket' does not exist", id="bucket"),
        pytest.param(S3_GLOB, {"AWS_ENDPOINT_URL": "http://127.0.0.1:{port}"}, "connect", id="unreachable endpoint"),
        pytest.param(f"s3://{BUCKET}/{PREFIX}/daft/nothing.warc.gz", {}, "matched no WARC files", id="no match"),
        pytest.param("s4://warcs/a.warc.gz", {}, "No FileSystem for scheme", id="scheme typo"),
    ],
)
def test_input_mistakes_exit_2_with_one_line_and_write_nothing(
    spark: Any,
    s3_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    pattern: str,
    env_change: dict[str, str],
    expected: str,
) -> None:
    for name, value in env_change.items():
        monkeypatch.setenv(name, value.format(port=free_port()))
    out = tmp_path / "run"
    # Next to an input that exists: a mistake in one --input is not skipped over.
    code = _curate(spark, "ingest", "--input", pattern, "--input", EXISTING, "--out", str(out))
    _one_line_exit_2(code, capsys.readouterr().err, pattern, expected)
    assert not out.exists()


def test_a_missing_local_input_next_to_existing_ones_exits_2(
    spark: Any, shared_data: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = str(shared_data / "cc-warc/whirlwind/no-such.warc.gz")
    args = ["--input", str(shared_data / INPUTS[1]), "--input", missing, "--out", str(tmp_path / "run")]
    _one_line_exit_2(_curate(spark, "ingest", "--local-runner", *args), capsys.readouterr().err, missing, "matched no")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("out", "env_change", "expected"),
    [
        pytest.param(
            f"s3://{EXPORTS}/rejected", {"AWS_SECRET_ACCESS_KEY": "wrong"}, "check the credentials", id="keys"
        ),
        pytest.param("s3://no-such-bucket/corpus", {}, "does not exist", id="missing bucket"),
    ],
)
def test_export_mistakes_exit_2_before_any_work(
    s3_run: Path,
    spark: Any,
    server: S3Server,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    out: str,
    env_change: dict[str, str],
    expected: str,
) -> None:
    before = sorted(p.name for p in s3_run.iterdir())
    for name, value in env_change.items():
        monkeypatch.setenv(name, value)
    code = _curate(spark, "export", "--run", str(s3_run), "--out", out)
    _one_line_exit_2(code, capsys.readouterr().err, out, expected)
    assert sorted(p.name for p in s3_run.iterdir()) == before
    assert server.keys(EXPORTS, "rejected/") == []
