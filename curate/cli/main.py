"""The `curate` command. Heavy imports (pyspark, fasttext) happen inside commands: --help is instant."""

from __future__ import annotations

import logging
import sys

import typer

from curate.cli.ingest import ingest
from curate.errors import CurateError

app = typer.Typer(
    name="curate",
    help="Build math pre-training corpora from Common Crawl, and prove they are free of benchmark leakage.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command()(ingest)


def _mount_optional() -> None:
    """Sub-commands whose modules are present. Each module keeps its heavy imports inside functions."""
    import importlib

    for module_name, attribute, name in (
        ("curate.cli.run", "run", None),
        ("curate.cli.dedup", "dedup", None),
        ("curate.cli.classify", "app", "classify"),
        ("curate.cli.domains", "domains", None),
        ("curate.cli.decontaminate", "decontaminate", None),
        ("curate.cli.export", "export", None),
        ("curate.cli.report", "report", None),
        ("curate.cli.annotate", "app", "annotate"),
    ):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        target = getattr(module, attribute)
        if isinstance(target, typer.Typer):
            app.add_typer(target, name=name)
        else:
            app.command()(target)


_mount_optional()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except CurateError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
