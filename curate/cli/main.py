"""The `curate` command. Heavy imports (pyspark, fasttext) happen inside commands: --help is instant."""

from __future__ import annotations

import gc
import logging
import os
import sys

import typer
from typer.exceptions import TyperException

from curate.cli.ingest import ingest
from curate.errors import DEBUG_ENV, CurateError, debug_enabled, one_line

app = typer.Typer(
    name="curate",
    help="Build math pre-training corpora from Common Crawl, and prove they are free of benchmark leakage. "
    "Errors are one line; --debug (before the verb) or CURATE_DEBUG=1 shows tracebacks and the JVM's output.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command()(ingest)

# Exit codes: 2 the user asked for something impossible (arguments, configuration, a path), 1 anything else.
USER_MISTAKE = 2
FAILURE = 1


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


def _fail(message: str, exit_code: int) -> None:
    from curate.progress import stop_all

    stop_all()  # a stage that failed left its live line running
    sys.stderr.write(f"error: {one_line(message)}\n")
    sys.stderr.flush()
    sys.exit(exit_code)


def _usage_message(exc: TyperException) -> str:
    """`curate ingest: No such option: --bogus (see `curate ingest --help`)`: the usage error of the verb typed."""
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "curate"
    return f"{command}: {exc.format_message()} (see `{command} --help`)"


def main(argv: list[str] | None = None) -> None:
    # What the imports above made lives as long as the command: frozen, no collection traverses it again (a full
    # collection of it took 43 ms, and a one-record ingest made two).
    gc.freeze()
    args = list(sys.argv[1:] if argv is None else argv)
    # `--debug` belongs to no verb, so it is taken out wherever it stands; the variable carries it to the session
    # builder (JVM output) and to Spark's Python workers.
    if "--debug" in args:
        args = [arg for arg in args if arg != "--debug"]
        os.environ[DEBUG_ENV] = "1"
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if debug_enabled():
        app(args=args, prog_name="curate")
        return
    try:
        result = app(args=args, prog_name="curate", standalone_mode=False)
    except TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.exit(exc.exit_code)  # `curate` or a verb group alone: the help has been printed, as click does
        _fail(_usage_message(exc), exc.exit_code)
    except typer.Abort:
        _fail("interrupted", 130)
    except CurateError as exc:
        _fail(str(exc), exc.exit_code)
    except OSError as exc:
        if exc.filename is None:
            _fail(f"{type(exc).__name__}: {exc} (rerun with --debug for the traceback)", FAILURE)
        # A path the user named that cannot be used the way the command needs (a file where a directory is
        # expected, no permission, a read-only disk).
        _fail(f"{exc.filename}: {exc.strerror or exc}", USER_MISTAKE)
    except Exception as exc:  # the last line of defence: one line, and how to see more
        _fail(f"{type(exc).__name__}: {exc} (an unexpected failure; rerun with --debug for the traceback)", FAILURE)
    if isinstance(result, int) and result != 0:
        sys.exit(result)


if __name__ == "__main__":
    main()
