"""`curate dedup`: near-duplicate removal (MinHash LSH + connected components) on a finished stage."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from curate.cli.common import (
    ForceOption,
    MasterOption,
    SparkConfOption,
    StageNameOption,
    make_context,
    out,
    print_summary,
    stage_location,
)
from curate.errors import ConfigError
from curate.stages import registry


def dedup(
    run_dir: Annotated[str, typer.Option("--out", "-o", help="Run directory holding the source stage.")],
    source: Annotated[
        str, typer.Option("--source", "-s", help="Finished stage to deduplicate: a stage name in the run, or a path.")
    ] = registry.URL_DEDUP.name(),
    previous: Annotated[
        list[str] | None,
        typer.Option(
            "--previous",
            help="A near-dedup stage of an earlier crawl (repeatable): new documents are also matched against "
            "its stored signatures, and its documents are never removed.",
        ),
    ] = None,
    config: Annotated[str | None, typer.Option("--config", "-c", help="YAML with a `dedup:` section.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override one parameter, e.g. dedup.minhash.threshold=0.8 (repeatable)."),
    ] = None,
    name: StageNameOption = registry.NEAR_DEDUP.name(),  # noqa: B008 (a str, computed once)
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the resolved configuration and stop.")] = False,
    master: MasterOption = None,
    force: ForceOption = False,
    spark_conf: SparkConfOption = None,
) -> None:
    """Remove near-duplicate documents: each removed page agrees with its cluster's kept page at the threshold.

    Writes <out>/<name>/ with the kept documents, `_rejected/` (reason near_duplicate), `_duplicates/` (each
    removal with its cluster, kept document and Jaccard estimate) and `_signatures/` (the index a later
    crawl is deduplicated against with --previous).
    """
    from curate.config import load_config
    from curate.stage import Inputs
    from curate.stages.dedup import dedup_config

    raw = load_config(config, list(set_ or []))
    unknown = sorted(set(raw) - {"dedup"})
    if unknown and config is None:
        raise ConfigError(f"--set: `curate dedup` only reads the dedup section, got {', '.join(unknown)}")
    resolved = dedup_config(raw.get("dedup"), origin=config or "--set flags")
    if dry_run:
        out.print_json(json.dumps({"dedup": resolved.to_dict(), "previous": list(previous or [])}))
        return
    ctx = make_context(run_dir, master, False, force, spark_conf)
    inputs = Inputs(name, stages=(stage_location(ctx, source, "--source"), *(previous or [])))
    manifest = registry.NEAR_DEDUP.run(ctx, inputs, resolved)
    print_summary([manifest], run_dir)
    extra = manifest.extra
    out.print(
        f"{extra['bands']} bands x {extra['rows']} rows: {extra['candidate_pairs']:,} candidate pairs, "
        f"{extra['edges']:,} verified, {extra['clusters']:,} clusters ({extra['rounds']} component rounds)"
    )
