"""`curate ingest`: WARC files to documents."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from curate.cli.common import (
    ForceOption,
    LocalOption,
    MasterOption,
    SparkConfOption,
    make_context,
    positive_number,
    print_summary,
)
from curate.errors import ConfigError

if TYPE_CHECKING:
    from curate.stage import RunContext

S3EndpointOption = Annotated[
    str | None,
    typer.Option(
        "--s3-endpoint",
        help="S3-compatible endpoint (MinIO, Ceph, R2), e.g. http://127.0.0.1:9000. Default: $AWS_ENDPOINT_URL.",
    ),
]


def resolve_inputs(ctx: RunContext, patterns: list[str], s3_endpoint: str | None = None) -> list[str]:
    """The WARC files `patterns` name (ConfigError if one matches nothing), with the session settings their
    schemes need: the S3 endpoint for the executors, and a Spark session where Hadoop expands the globs."""
    from curate.io.fs import expand_inputs, streams_directly, use_s3_endpoint

    for key, value in use_s3_endpoint(s3_endpoint).items():
        ctx.spark_conf.setdefault(key, value)
    through_hadoop = [p for p in patterns if not streams_directly(p)]
    if through_hadoop and ctx.runner == "local":
        raise ConfigError(f"--input {through_hadoop[0]}: this scheme is read through Spark; drop --local-runner")
    if through_hadoop:
        ctx.spark  # noqa: B018 - Hadoop expands these globs, which needs the session
    return expand_inputs(patterns)


def ingest(
    input: Annotated[list[str], typer.Option("--input", "-i", help="WARC files, directories or globs (repeatable).")],
    out: Annotated[str, typer.Option("--out", "-o", help="Run directory (local path, file://, hdfs://, s3a://).")],
    master: MasterOption = None,
    local_runner: LocalOption = False,
    force: ForceOption = False,
    spark_conf: SparkConfOption = None,
    max_record_mb: Annotated[
        float | None, typer.Option(help="Records larger than this are dropped as too_large (default 16).")
    ] = None,
    s3_endpoint: S3EndpointOption = None,
    config: Annotated[str | None, typer.Option("--config", "-c", help="YAML with an `ingest:` section.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override one parameter, e.g. ingest.record_timeout_s=20 (repeatable)."),
    ] = None,
) -> None:
    """Read WARC files, keep HTML responses, extract text with its math, drop exact-URL duplicates.

    Inputs: local paths, s3:// (= s3a://), gs://, http(s):// (streamed by the executors), or any Hadoop scheme
    (hdfs://, viewfs://: read through Spark's binaryFile source).
    """
    from curate.config import load_config, section
    from curate.stages.ingest import IngestConfig, run_ingest

    raw = load_config(config, list(set_ or []))
    unknown = sorted(set(raw) - {"ingest"})
    if unknown and config is None:
        raise ConfigError(f"--set: `curate ingest` only reads the ingest section, got {', '.join(unknown)}")
    settings = section(raw, "ingest", IngestConfig, config or "--set flags")
    if max_record_mb is not None:
        settings.max_record_bytes = int(positive_number(max_record_mb, "--max-record-mb") * 2**20)
    ctx = make_context(out, master, local_runner, force, spark_conf)
    paths = resolve_inputs(ctx, input, s3_endpoint)
    manifests = run_ingest(ctx, paths, settings)
    print_summary(manifests, out)
