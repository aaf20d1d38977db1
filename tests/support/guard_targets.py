"""Functions for `RecordGuard` to supervise in tests: each misbehaves in one way a native parser can.

The guard's child imports this module by name (`support.guard_targets:behave`), as it would import the
product's extraction function, so a test of it is also a test that the child sees the parent's `sys.path`.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time
from typing import Any


class Unpicklable(Exception):
    """An exception the child cannot send back as itself: it holds a lock."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        import threading

        self.lock = threading.Lock()


def behave(action: str, value: Any = None, weight: bytes | None = None) -> Any:
    """Do `action` with `value`; the normal case returns a result that depends on both. `weight` (a page) only
    makes the record heavier."""
    if action == "return":
        return {"echo": value, "pid_is_int": isinstance(os.getpid(), int)}
    if action == "raise":
        raise ValueError(f"bad record {value!r}")
    if action == "raise_unpicklable":
        raise Unpicklable(f"holds a lock: {value}")
    if action == "abort":
        os.abort()  # SIGABRT, as a C++ parser's failed assertion or uncaught exception ends a process
    if action == "segfault":
        ctypes.string_at(0)  # read address 0: SIGSEGV inside native code
    if action == "sleep":
        time.sleep(value)
        return "woke"
    if action == "allocate":
        return len(bytearray(value))  # past the address-space cap this fails inside the allocator
    if action == "exit":
        sys.exit(value)
    if action == "print":
        # Writes to the process's stdout from Python and from the file descriptor, as native code would:
        # neither may reach the parent as a protocol message.
        print("noise from python")
        os.write(1, b"noise from the fd\n")
        return value
    raise AssertionError(f"unknown action {action!r}")
