"""The three kinds of failure curate distinguishes (STYLE habit 4).

- ConfigError: the user asked for something impossible; exit code 2, message names the field/file.
- InputError: one input file (or one line of it) is bad; recorded with the file name and skipped,
  the rest of the run goes on.
- CurateError: anything that must abort the run.
"""

from __future__ import annotations


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
