"""The local runner's extraction runs without transparent huge pages, and gives the process its setting back."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support.fresh_python import LOCAL_INGEST, python_json, write_pages_warc

STATUS = Path("/proc/self/status")


def _huge_pages_here() -> int | None:
    """This process's THP_enabled, or None where the kernel does not report it."""
    if not STATUS.exists() or "THP_enabled:" not in (status := STATUS.read_text()):
        return None
    return int(status.split("THP_enabled:")[1].split()[0])


# The tests start from a process that may use huge pages: one that inherited them off proves nothing here.
pytestmark = pytest.mark.skipif(_huge_pages_here() != 1, reason="THP_enabled is not reported, or already 0")

_ENABLED = (
    "import json, subprocess, sys\n"
    "def enabled(status):\n"
    "    return int(status.split('THP_enabled:')[1].split()[0])\n"
    "def child():\n"
    "    code = 'print(open(\"/proc/self/status\").read())'\n"
    "    return enabled(subprocess.run([sys.executable, '-c', code], capture_output=True, text=True).stdout)\n"
    "def here():\n"
    "    return enabled(open('/proc/self/status').read())\n"
)


def _run(code: str, cwd: Path, environment: dict[str, str] | None = None) -> dict[str, object]:
    if environment is None:
        environment = {key: value for key, value in os.environ.items() if key != "MIMALLOC_ALLOW_THP"}
    return python_json(_ENABLED + code, cwd, environment)


_BLOCK = (
    "from curate.runners.huge_pages import transparent_huge_pages_off\n"
    "before = here()\n"
    "with transparent_huge_pages_off():\n"
    "    inside, inside_child = here(), child()\n"
    "print(json.dumps({'before': before, 'inside': inside, 'child': inside_child, 'after': here()}))"
)


def test_huge_pages_are_off_inside_the_block_and_for_its_children_then_back(tmp_path: Path) -> None:
    assert _run(_BLOCK, tmp_path) == {"before": 1, "inside": 0, "child": 0, "after": 1}


def test_a_users_own_mimalloc_setting_is_left_alone(tmp_path: Path) -> None:
    seen = _run(_BLOCK, tmp_path, {**os.environ, "MIMALLOC_ALLOW_THP": "1"})
    assert seen == {"before": 1, "inside": 1, "child": 1, "after": 1}


def test_a_local_ingest_leaves_the_process_as_it_found_it(tmp_path: Path, shared_data: Path) -> None:
    write_pages_warc(tmp_path, shared_data)
    seen = _run("before = here()\n" + LOCAL_INGEST + "print(json.dumps({'before': before, 'after': here()}))", tmp_path)
    assert seen == {"before": 1, "after": 1}


def test_both_stages_of_a_local_ingest_run_without_them(tmp_path: Path, shared_data: Path) -> None:
    write_pages_warc(tmp_path, shared_data)
    record_inside = (
        "from curate.stages import ingest\n"
        "seen = {}\n"
        "def recording(name, function):\n"
        "    def run(*args, **kwargs):\n"
        "        seen[name] = here()\n"
        "        return function(*args, **kwargs)\n"
        "    return run\n"
        "ingest.run_step_stage = recording('extract', ingest.run_step_stage)\n"
        "ingest._url_dedup_local = recording('url_dedup', ingest._url_dedup_local)\n"
    )
    seen = _run(record_inside + LOCAL_INGEST + "print(json.dumps({**seen, 'after': here()}))", tmp_path)
    assert seen == {"extract": 0, "url_dedup": 0, "after": 1}
