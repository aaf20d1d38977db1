"""The three kinds of failure curate distinguishes (STYLE habit 4).

- ConfigError: the user asked for something impossible; exit code 2, message names the field/file.
- InputError: one input file (or one line of it) is bad; recorded with the file name and skipped,
  the rest of the run goes on.
- CurateError: anything that must abort the run.

At the command line every failure ends as one `error: ...` line on stderr (`one_line`); the traceback is shown
only with `--debug` or CURATE_DEBUG=1 (`debug_enabled`).
"""

from __future__ import annotations

import os

DEBUG_ENV = "CURATE_DEBUG"


class CurateError(Exception):
    """A fatal error: the run cannot continue."""

    exit_code = 1


class ConfigError(CurateError):
    """Bad configuration or arguments. The message says which field and where it came from."""

    exit_code = 2


class InputError(CurateError):
    """A malformed input file. `location` is `path` or `path:line`."""

    def __init__(self, location: str, reason: str) -> None:
        super().__init__(f"{location}: {reason}")
        self.location = location
        self.reason = reason


def debug_enabled() -> bool:
    """True when the user asked for tracebacks and the JVM's own output (`--debug` sets the variable)."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def one_line(message: object, limit: int = 400) -> str:
    """`message` folded onto one line: Java and Python messages often carry their stack or a usage block."""
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_exception(exc: BaseException, limit: int = 300) -> str:
    """`Type: message` on one line, cut to `limit` characters: a drop detail, not a traceback."""
    message = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
