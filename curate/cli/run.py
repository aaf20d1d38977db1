"""`curate run`: the whole pipeline, resumable; `--dry-run` prints the resolved configuration."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from curate.cli.common import (
    ForceOption,
    LocalOption,
    MasterOption,
    SparkConfOption,
    console,
    make_context,
    out,
    print_summary,
)
from curate.errors import ConfigError


def run(
    input: Annotated[list[str], typer.Option("--input", "-i", help="WARC files, directories or globs (repeatable).")],
    out_dir: Annotated[str, typer.Option("--out", "-o", help="Run directory (local path, file://, hdfs://, s3a://).")],
    config: Annotated[
        str | None, typer.Option("--config", "-c", help="YAML parameters (sections: ingest, dedup, train, ...).")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override one parameter: section.key=value (repeatable).")
    ] = None,
    iterations: Annotated[int | None, typer.Option(help="Shortcut for --set loop.iterations=N.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the resolved configuration and stop.")] = False,
    master: MasterOption = None,
    local_runner: LocalOption = False,
    force: ForceOption = False,
    spark_conf: SparkConfOption = None,
) -> None:
    """Ingest, near-dedup, N rounds of (train, score, select, domains, seed expansion), decontaminate, export."""
    from curate.cli.ingest import resolve_inputs
    from curate.config import load_config
    from curate.pipeline import PipelineConfig, run_pipeline

    overrides = list(set_ or [])
    if iterations is not None:
        overrides.append(f"loop.iterations={iterations}")
    raw = load_config(config, overrides)
    pipeline_config = PipelineConfig.from_dict(raw, origin=config or "--set flags")
    if dry_run:
        out.print_json(json.dumps(pipeline_config.to_dict(), default=str))
        return
    if local_runner:
        raise ConfigError("--local-runner applies to `curate ingest`; `curate run` has shuffle stages that need Spark")
    ctx = make_context(out_dir, master, local_runner, force, spark_conf)
    paths = resolve_inputs(ctx, input)
    if not paths:
        raise ConfigError(f"--input matched no WARC files: {' '.join(input)}")
    console.print(f"[bold]curate run[/bold]: {len(paths)} WARC file(s) -> {out_dir}")

    def progress(manifest):  # type: ignore[no-untyped-def]
        console.print(
            f"  [green]done[/green] {manifest.stage:<28} {manifest.rows_in:>10,} in -> {manifest.rows_out:>10,} out"
            f"  ({manifest.wall_seconds:.1f} s)"
        )

    result = run_pipeline(ctx, paths, pipeline_config, on_stage=progress)
    print_summary(result.manifests, out_dir)
    for item in result.iterations:
        overlap = "-" if item.overlap_with_previous is None else f"{item.overlap_with_previous:.1%}"
        out.print(
            f"iteration {item.iteration}: model {item.model_id}, {item.selected:,} collected, "
            f"overlap with previous {overlap}, flagged domains {item.flagged_domains}, "
            f"seed added {item.seed_added if item.seed_added is not None else '-'}"
        )
    if result.message:
        out.print(f"[yellow]{result.message}[/yellow]")
    if result.export_dir:
        out.print(f"corpus: {result.export_dir}")
