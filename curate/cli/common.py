"""What every pipeline command shares: runner options, the run context, and the end-of-run summary."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from curate.manifest import Manifest
from curate.stage import RunContext

console = Console(stderr=True)
out = Console()

MasterOption = Annotated[
    str | None,
    typer.Option(
        "--master",
        help="Spark master: local[*] (default), spark://host:7077, yarn, k8s://... Also $CURATE_SPARK_MASTER.",
    ),
]
LocalOption = Annotated[
    bool, typer.Option("--local-runner", help="Run the steps in a plain Python loop instead of Spark (small inputs).")
]
ForceOption = Annotated[bool, typer.Option("--force", help="Redo stages even if their manifest says they finished.")]
SparkConfOption = Annotated[
    list[str] | None, typer.Option("--spark-conf", help="Extra Spark settings, key=value (repeatable).")
]


def make_context(
    run_dir: str, master: str | None, local_runner: bool, force: bool, spark_conf: list[str] | None = None
) -> RunContext:
    conf = {}
    for item in spark_conf or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--spark-conf {item!r}: expected key=value")
        conf[key.strip()] = value.strip()
    return RunContext(run_dir, runner="local" if local_runner else "spark", master=master, force=force, spark_conf=conf)


def print_summary(manifests: list[Manifest], run_dir: str) -> None:
    table = Table(title=f"curate run: {run_dir}", show_lines=False)
    for column in ("stage", "in", "out", "dropped (by reason)", "balanced", "seconds"):
        table.add_column(column, justify="right" if column in ("in", "out", "seconds") else "left")
    for manifest in manifests:
        drops = ", ".join(f"{reason} {count:,}" for reason, count in manifest.drops.items()) or "-"
        table.add_row(
            manifest.stage,
            f"{manifest.rows_in:,}",
            f"{manifest.rows_out:,}",
            drops,
            "yes" if manifest.balanced else "[red]NO[/red]",
            f"{manifest.wall_seconds:.1f}",
        )
    out.print(table)
    problems = [p for m in manifests for p in m.problems]
    if problems:
        files = Table(title="input files with problems (the rest of each file and of the input was processed)")
        for column in ("file", "problem", "at offset", "detail"):
            files.add_column(column)
        for problem in problems:
            files.add_row(
                str(problem.get("file")),
                str(problem.get("reason")),
                str(problem.get("offset")),
                str(problem.get("detail"))[:120],
            )
        out.print(files)
    out.print(f"output: {run_dir}")
