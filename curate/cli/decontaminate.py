"""`curate decontaminate`: remove documents (or passages) that contain benchmark n-grams."""

from __future__ import annotations

from typing import Annotated

import typer

from curate.cli.common import (
    ForceOption,
    LocalOption,
    MasterOption,
    SparkConfOption,
    StageNameOption,
    make_context,
    out,
    print_summary,
    stage_location,
)
from curate.stages import registry


def decontaminate(
    run_dir: Annotated[str, typer.Option("--out", "-o", help="Run directory holding the source stage.")],
    source: Annotated[
        str, typer.Option("--source", "-s", help="Finished stage to clean: a stage name in the run, or a path.")
    ],
    benchmarks: Annotated[
        str | None,
        typer.Option(help="Benchmark registry YAML (default: pipelines/benchmarks.yaml, the shared sets)."),
    ] = None,
    data_root: Annotated[
        str | None, typer.Option(help="Directory the registry's paths are relative to (default $CURATE_SHARED_DATA).")
    ] = None,
    only: Annotated[
        list[str] | None, typer.Option(help="Use only these benchmarks of the registry (repeatable).")
    ] = None,
    mode: Annotated[
        str, typer.Option(help="drop: remove contaminated documents; cut: remove only the passages.")
    ] = "drop",
    n: Annotated[
        int, typer.Option(help="N-gram length in words (a number, letter or LaTeX command counts half).")
    ] = 10,
    index: Annotated[
        str | None, typer.Option(help="A prebuilt index (.npz) instead of building one from the registry.")
    ] = None,
    name: StageNameOption = registry.DECONTAMINATE.name(),  # noqa: B008 (a str, computed once)
    allow_empty_benchmarks: Annotated[
        bool,
        typer.Option(help="Go on when a benchmark file holds no items, or none long enough to index (else an error)."),
    ] = False,
    master: MasterOption = None,
    local_runner: LocalOption = False,
    force: ForceOption = False,
    spark_conf: SparkConfOption = None,
) -> None:
    """Drop (or cut) documents holding any 10-gram of a benchmark question or solution, with an audit trail.

    Writes <out>/<name>/ with the clean documents, `_rejected/`, and `_contamination/`: one row per hit with
    the benchmark, item id, matched text and its character offset in the document.
    """
    from rich.table import Table

    from curate.stage import Inputs
    from curate.stages.decontam import DecontamConfig

    config = DecontamConfig(
        benchmarks=benchmarks,
        data_root=data_root,
        only=list(only) if only else None,
        n=n,
        mode=mode,
        index=index,
        allow_empty_benchmarks=allow_empty_benchmarks,
    )
    ctx = make_context(run_dir, master, local_runner, force, spark_conf)
    inputs = Inputs(name, stages=(stage_location(ctx, source, "--source"),))
    manifest = registry.DECONTAMINATE.run(ctx, inputs, config)
    print_summary([manifest], run_dir)
    table = Table(title=f"contamination ({manifest.extra['contamination']['mode']} mode)")
    for column in ("benchmark", "documents", "hits", "items hit", "items indexed"):
        table.add_column(column, justify="left" if column == "benchmark" else "right")
    per_benchmark = manifest.extra["contamination"]["per_benchmark"]
    for bench, stats in manifest.extra["index"]["benchmarks"].items():
        found = per_benchmark.get(bench, {})
        table.add_row(
            bench,
            f"{found.get('documents', 0):,}",
            f"{found.get('hits', 0):,}",
            f"{found.get('items', 0):,}",
            f"{stats['items_covered']:,}/{stats['items']:,}",
        )
    out.print(table)
