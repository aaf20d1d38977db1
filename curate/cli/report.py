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

    path = write_report(run, out)
    console.print(f"report: {path}", markup=False)
