"""What every pipeline command shares: runner options, the run context, and the end-of-run summary."""

from __future__ import annotations

import math
import os
import tempfile
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from curate.errors import ConfigError
from curate.manifest import Manifest
from curate.stage import RunContext
from curate.stages.registry import ITERATION_PREFIX

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


def _checked_stage_name(value: str) -> str:
    from curate.stage import checked_stage_path

    return checked_stage_path(value, "--name")


# Checked as the option is parsed, so no command can join an unchecked name to the run directory.
StageNameOption = Annotated[
    str,
    typer.Option(
        "--name",
        help="Where the stage goes in the run: a plain name, or iter-NN/<name> (default: what `curate run` writes).",
        callback=_checked_stage_name,
    ),
]


def stage_location(ctx: RunContext, stage: str, option: str = "--input") -> str:
    """A finished stage given on the command line: a name relative to the run, or a path (it must exist)."""
    from curate.io import fs

    location = stage if ("/" in stage and not stage.startswith(ITERATION_PREFIX)) or "://" in stage else None
    location = location or ctx.stage_dir(stage)
    if not fs.exists(location):
        raise ConfigError(f"{option} {stage}: {location} does not exist")
    return location


def check_output_dir(path: str, option: str = "--out") -> None:
    """A local output directory must be a directory we can write: say so now, before any JVM starts.

    An existing directory gets a probe file written inside it (permission bits alone do not tell: root ignores
    them, and a read-only mount shows only when writing); a missing one needs its nearest existing parent to be a
    writable directory. Nothing is created here. Remote paths are checked by their own filesystem.
    """
    from curate.io import fs

    if not fs.is_local(path):
        return
    local = os.path.abspath(fs.local_path(path))
    if os.path.exists(local) and not os.path.isdir(local):
        raise ConfigError(f"{option} {path} is a file, not a directory: name a directory (it is created if missing)")
    if os.path.isdir(local):
        try:
            with tempfile.TemporaryFile(dir=local, prefix=".curate-write-probe-"):
                pass
        except OSError as exc:
            raise ConfigError(
                f"{option} {path}: cannot write there ({exc.strerror}); name a writable directory"
            ) from None
        return
    parent = os.path.dirname(local)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ConfigError(f"{option} {path}: {parent} is a file, so the directory cannot be created there")
    read_only = bool(os.statvfs(parent).f_flag & os.ST_RDONLY)
    if read_only or not os.access(parent, os.W_OK):
        raise ConfigError(f"{option} {path}: {parent} is not writable, so the directory cannot be created there")


def positive_number(value: float, option: str) -> float:
    """`value` if it is a finite number above 0 (typer accepts `nan` and `inf` as floats)."""
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{option} {value}: expected a finite number above 0")
    return value


def make_context(
    run_dir: str, master: str | None, local_runner: bool, force: bool, spark_conf: list[str] | None = None
) -> RunContext:
    check_output_dir(run_dir)
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
