"""`curate export`: a run's final corpus as Parquet shards with a manifest."""

from __future__ import annotations

from typing import Annotated

import typer

from curate.cli.common import ForceOption, MasterOption, SparkConfOption, make_context
from curate.cli.ingest import S3EndpointOption


def export(
    run: Annotated[str, typer.Option("--run", help="Run directory to export from.")],
    out: Annotated[
        str,
        typer.Option(
            "--out", "-o", help="Directory the shards and manifest.json are written to (local, hdfs://, s3://, gs://)."
        ),
    ],
    target_shard_mb: Annotated[
        float, typer.Option(help="Target size of a shard file in MiB (the last shard holds the remainder).")
    ] = 512.0,
    stage: Annotated[
        str | None,
        typer.Option("--stage", help="Stage to export, relative to the run (default: run.json's final_stage)."),
    ] = None,
    master: MasterOption = None,
    force: ForceOption = False,
    spark_conf: SparkConfOption = None,
    s3_endpoint: S3EndpointOption = None,
) -> None:
    """Write the corpus as zstd Parquet shards ordered by doc_id, with sizes, checksums and token counts."""
    from rich.markup import escape
    from rich.table import Table

    from curate.cli.common import out as console
    from curate.io.fs import use_s3_endpoint
    from curate.stages.export import ExportConfig, run_export

    config = ExportConfig.with_shard_mb(target_shard_mb)
    use_s3_endpoint(s3_endpoint)  # the upload runs on the driver: no executor needs the endpoint
    ctx = make_context(run, master, False, force, spark_conf)
    manifest = run_export(ctx, out, source_stage=stage, config=config)
    table = Table(title=escape(f"curate export: {manifest['source_stage']} -> {out}"))
    for column in ("shard", "rows", "MB", "tokens", "sha256"):
        table.add_column(column, justify="left" if column in ("shard", "sha256") else "right")
    for shard in manifest["shards"]:
        table.add_row(
            shard["name"],
            f"{shard['rows']:,}",
            f"{shard['bytes'] / 1e6:,.1f}",
            f"{shard['tokens']:,}",
            shard["sha256"][:16],
        )
    console.print(table)
    console.print(
        f"{manifest['rows']:,} documents, {manifest['bytes'] / 1e6:,.1f} MB, {manifest['tokens']:,} tokens "
        f"({manifest['token_counter']['tokenizer']}), {manifest['wall_seconds']:.1f} s"
    )
