"""A `curate` command, and the processes it starts, run without transparent huge pages unless the user asks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

STATUS = Path("/proc/self/status")

pytestmark = pytest.mark.skipif(
    not STATUS.exists() or "THP_enabled" not in STATUS.read_text(), reason="the kernel does not report THP_enabled"
)

_PROBE = (
    "import json, subprocess, sys\n"
    "import curate.cli\n"
    "import pyarrow as pa\n"
    "pa.allocate_buffer(1 << 20)\n"
    "def enabled(status):\n"
    "    return int(status.split('THP_enabled:')[1].split()[0])\n"
    "child = subprocess.run([sys.executable, '-c', 'print(open(\"/proc/self/status\").read())'],\n"
    "                       capture_output=True, text=True, check=True).stdout\n"
    "print(json.dumps({'self': enabled(open('/proc/self/status').read()), 'child': enabled(child)}))"
)


def _huge_pages_enabled(environment: dict[str, str]) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], env=environment, capture_output=True, text=True, timeout=120, check=True
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_the_command_process_and_its_children_have_huge_pages_off() -> None:
    environment = {key: value for key, value in os.environ.items() if key != "MIMALLOC_ALLOW_THP"}
    assert _huge_pages_enabled(environment) == {"self": 0, "child": 0}


def test_a_users_own_setting_is_kept() -> None:
    assert _huge_pages_enabled({**os.environ, "MIMALLOC_ALLOW_THP": "1"}) == {"self": 1, "child": 1}
