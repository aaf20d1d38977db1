"""`curate annotate`: add, list, remove, validate and import URL-pattern labels, and review domain statistics.

Runnable on its own (`python -m curate.cli.annotate`) so the interactive review can be driven in a pseudo-terminal.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from curate.annotate.store import Annotation, AnnotationStore, check_annotator, read_pattern_file, utc_now
from curate.errors import ConfigError, CurateError

app = typer.Typer(
    help="Label URL patterns (host/path-prefix) as math or not-math: the human step of the collection loop.",
    no_args_is_help=True,
)

out = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class Label(StrEnum):
    math = "math"
    not_math = "not-math"


RootOption = Annotated[
    Path, typer.Option("--root", envvar="CURATE_ANNOTATIONS", help="Annotation store directory (git-tracked).")
]
AnnotatorOption = Annotated[
    str | None,
    typer.Option("--annotator", "-a", envvar="CURATE_ANNOTATOR", help="Who labels; default: the OS user."),
]
IterationOption = Annotated[
    int | None,
    typer.Option(
        "--iteration", "-i", min=1, envvar="CURATE_ITERATION", help="Collection iteration; default: the latest one."
    ),
]
NoteOption = Annotated[str | None, typer.Option("--note", help="Free text kept with the record.")]
DEFAULT_ROOT = Path("annotations")


@contextmanager
def _reported() -> Iterator[None]:
    """Turn curate's errors into a one-line message and their exit code instead of a traceback."""
    try:
        yield
    except CurateError as error:
        err.print(Text(f"error: {error}", style="red"))
        raise typer.Exit(error.exit_code) from None


def _annotator(name: str | None) -> str:
    if not name:
        try:
            name = getpass.getuser()
        except (KeyError, OSError):
            raise ConfigError("no OS user name: pass --annotator or set CURATE_ANNOTATOR") from None
    return check_annotator(name)


def _iteration(store: AnnotationStore, iteration: int | None) -> int:
    if iteration is not None:
        return iteration
    existing = store.iterations()
    return existing[-1] if existing else 1


@app.command()
def add(
    pattern: Annotated[
        str, typer.Argument(metavar="DOMAIN/PATH", help="e.g. mathoverflow.net/questions (a URL is fine).")
    ],
    label: Annotated[Label, typer.Option("--label", "-l", help="math or not-math.")],
    note: NoteOption = None,
    annotator: AnnotatorOption = None,
    iteration: IterationOption = None,
    root: RootOption = DEFAULT_ROOT,
) -> None:
    """Label one pattern; the newest label of a pattern wins."""
    with _reported():
        store = AnnotationStore(root)
        record, receipt = store.add(
            pattern, label.value, annotator=_annotator(annotator), iteration=_iteration(store, iteration), note=note
        )
        out.print(Text(f"{record.pattern} {record.label}  -> {receipt.path}"))


@app.command()
def remove(
    pattern: Annotated[str, typer.Argument(metavar="DOMAIN/PATH", help="The pattern whose label to withdraw.")],
    note: NoteOption = None,
    annotator: AnnotatorOption = None,
    iteration: IterationOption = None,
    root: RootOption = DEFAULT_ROOT,
) -> None:
    """Withdraw a pattern's label by appending a tombstone (history is kept)."""
    with _reported():
        store = AnnotationStore(root)
        record, receipt = store.remove(
            pattern, annotator=_annotator(annotator), iteration=_iteration(store, iteration), note=note
        )
        out.print(Text(f"{record.pattern} removed  -> {receipt.path}"))


@app.command("list")
def list_(
    history: Annotated[
        bool, typer.Option("--history", help="Every record, tombstones included, in time order.")
    ] = False,
    label: Annotated[Label | None, typer.Option("--label", "-l", help="Only this label.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSONL on stdout instead of a table.")] = False,
    root: RootOption = DEFAULT_ROOT,
) -> None:
    """Show the effective annotations (latest record per pattern)."""
    with _reported():
        store = AnnotationStore(root)
        records = sorted(store.read(), key=Annotation.order_key) if history else list(store.effective().values())
        if label is not None:
            records = [r for r in records if r.label == label.value]
        if as_json:
            for record in records:
                typer.echo(record.to_json())
            return
        from curate.annotate.review import clean_for_terminal

        table = Table(title=f"{len(records)} {'records' if history else 'annotations'} in {root}")
        for name in ("pattern", "label", "annotator", "iter", "time", "note"):
            table.add_column(name)
        for record in records:
            table.add_row(
                Text(record.pattern),
                Text(record.label, style={"math": "green", "not-math": "red"}.get(record.label, "dim")),
                Text(record.annotator),
                Text(str(record.iteration)),
                Text(record.time),
                Text(clean_for_terminal(record.note, 60)),
            )
        out.print(table)


@app.command()
def validate(root: RootOption = DEFAULT_ROOT) -> None:
    """Check every annotation file; report each bad line as file:line and the reason (exit 1 if any)."""
    with _reported():
        store = AnnotationStore(root)
        count, errors = store.validate()
        for error in errors:
            err.print(Text(str(error), style="red"))
        files = len(store.files())
        out.print(Text(f"{count} valid records in {files} files, {len(errors)} errors"))
        if errors:
            raise typer.Exit(1)


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="JSONL or .csv with columns pattern[, label, note].")],
    label: Annotated[Label | None, typer.Option("--label", "-l", help="Label for rows without one.")] = None,
    note: NoteOption = None,
    annotator: AnnotatorOption = None,
    iteration: IterationOption = None,
    root: RootOption = DEFAULT_ROOT,
) -> None:
    """Add many patterns at once; all or nothing, and patterns that already carry the same label are left alone."""
    with _reported():
        store = AnnotationStore(root)
        rows = read_pattern_file(file, label.value if label else None)
        who, when, it = _annotator(annotator), utc_now(), _iteration(store, iteration)
        effective = store.effective()
        records = [
            Annotation(row.pattern, row.label, who, when, it, row.note or note)
            for row in rows
            if row.pattern not in effective or effective[row.pattern].label != row.label
        ]
        if records:
            store.append(records)
        out.print(Text(f"{len(records)} added, {len(rows) - len(records)} unchanged -> {store.path_for(who, it)}"))


@app.command()
def match(
    urls: Annotated[list[str], typer.Argument(help="URLs to look up.")],
    root: RootOption = DEFAULT_ROOT,
) -> None:
    """Which pattern and label apply to each URL (the same matcher seed expansion uses)."""
    with _reported():
        matcher = AnnotationStore(root).matcher()
        for url in urls:
            hit = matcher.match(url)
            typer.echo(json.dumps({"url": url, "pattern": hit[0] if hit else None, "label": hit[1] if hit else None}))


def _has_terminal() -> bool:
    if sys.stdin.isatty():
        return True
    try:
        # /dev/tty exists even without a controlling terminal; only opening it tells.
        with open("/dev/tty"):
            return True
    except OSError:
        return False


def _read_key() -> str:
    # click opens /dev/tty itself when stdin is redirected, and restores the terminal mode after each key.
    return typer.getchar()


@app.command()
def review(
    stats: Annotated[Path, typer.Option("--stats", help="Domain statistics directory (DOMAIN_STATS, PREFIX_STATS).")],
    all_domains: Annotated[bool, typer.Option("--all-domains", help="Also domains that are not flagged.")] = False,
    revisit_skipped: Annotated[bool, typer.Option("--revisit-skipped", help="Show skipped ones again.")] = False,
    annotator: AnnotatorOption = None,
    iteration: IterationOption = None,
    root: RootOption = DEFAULT_ROOT,
) -> None:
    """Label flagged domains one screen at a time: counts, top URL prefixes, sample pages and how many uncollected
    pages a label brings into the next seed. m math, n not-math, 1-9 pick a prefix then m/n, s skip, u undo, q quit."""
    # Imported here: every command of `curate` loads this module, and these two load pyarrow.compute and rich's
    # panels (about 50 ms of CPU) that only the review needs.
    from curate.annotate.review import ReviewSession
    from curate.annotate.stats import build_queue, load_stats

    with _reported():
        if not _has_terminal():
            raise ConfigError(
                "review reads single keys and needs a terminal; without one, label patterns with "
                "`curate annotate add DOMAIN/PATH --label math|not-math` or `curate annotate import FILE`"
            )
        store = AnnotationStore(root)
        queue = build_queue(load_stats(stats), all_domains=all_domains)
        if queue.skipped_rows:
            err.print(Text(f"{queue.skipped_rows} statistics rows have no valid host/path pattern and are left out"))
        session = ReviewSession(
            store,
            queue,
            annotator=_annotator(annotator),
            iteration=_iteration(store, iteration),
            read_key=_read_key,
            console=out,
            revisit_skipped=revisit_skipped,
        )
        session.run()


if __name__ == "__main__":
    app()
