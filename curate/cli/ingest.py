"""`curate ingest`: WARC files to documents."""

from __future__ import annotations

from typing import Annotated

import typer

from curate.cli.common import ForceOption, LocalOption, MasterOption, SparkConfOption, make_context, print_summary
from curate.errors import ConfigError


def ingest(
    input: Annotated[list[str], typer.Option("--input", "-i", help="WARC files, directories or globs (repeatable).")],
    out: Annotated[str, typer.Option("--out", "-o", help="Run directory (local path, file://, hdfs://, s3a://).")],
    master: MasterOption = None,
    local_runner: LocalOption = False,
    force: ForceOption = False,
    spark_conf: SparkConfOption = None,
    max_record_mb: Annotated[float, typer.Option(help="Records larger than this are dropped as too_large.")] = 16.0,
) -> None:
    """Read WARC files, keep HTML responses, extract text with its math, drop exact-URL duplicates."""
    from curate.io.fs import expand_inputs
    from curate.stages.ingest import IngestConfig, run_ingest

    ctx = make_context(out, master, local_runner, force, spark_conf)
    if any(not p.startswith(("file:", "/", ".")) and "://" in p for p in input):
        ctx.spark  # noqa: B018 - remote globs are expanded by Hadoop, which needs the session
    paths = expand_inputs(input)
    if not paths:
        raise ConfigError(f"--input matched no WARC files: {' '.join(input)}")
    manifests = run_ingest(ctx, paths, IngestConfig(max_record_bytes=int(max_record_mb * 2**20)))
    print_summary(manifests, out)
