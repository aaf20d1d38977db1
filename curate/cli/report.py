"""`curate report`: a run directory as one self-contained HTML page."""

from __future__ import annotations

from typing import Annotated

import typer


def report(
    run: Annotated[str, typer.Option("--run", help="Run directory to report on.")],
    out: Annotated[
        str | None, typer.Option("--out", "-o", help="HTML file to write (default: <run>/report.html).")
    ] = None,
) -> None:
    """Write an HTML report: stage counts and drops, score histograms with the cut-off, pages and tokens per
    iteration, top domains, contamination per benchmark, near-duplicate cluster sizes. No JVM needed."""
    from curate.cli.common import out as console
    from curate.report import write_report

    _check_paths(run, out)
    path = write_report(run, out)
    console.print(f"report: {path}", markup=False)


def _check_paths(run: str, out: str | None) -> None:
    import os

    from curate.errors import ConfigError
    from curate.io import fs

    if fs.is_local(run) and not os.path.isdir(fs.local_path(run)):
        raise ConfigError(f"--run {run}: no such directory; pass the --out directory of a curate run")
    if out is not None and os.path.isdir(out):
        raise ConfigError(
            f"--out {out} is a directory: name the HTML file to write, e.g. {os.path.join(out, 'report.html')}"
        )
    parent = os.path.dirname(os.path.abspath(out)) if out is not None else None
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if parent is not None and not os.path.isdir(parent):
        raise ConfigError(f"--out {out}: {parent} is a file, so the report cannot be written under it")
