"""Code run in a fresh interpreter: for what only a new process shows (its imports, process-wide settings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support.warcs import real_pages, write_warc

# A local `curate ingest` of `pages.warc.gz` (see `write_pages_warc`) into `run`, in the interpreter's own process.
LOCAL_INGEST = (
    "from curate.cli.main import main\n"
    "try:\n"
    "    main(['ingest', '-i', 'pages.warc.gz', '-o', 'run', '--local-runner'])\n"
    "except SystemExit as exc:\n"
    "    assert not exc.code, exc.code\n"
)


def write_pages_warc(directory: Path, shared_data: Path, count: int = 3) -> None:
    write_warc(real_pages(shared_data)[:count], directory / "pages.warc.gz")


def python_json(code: str, cwd: Path, environment: dict[str, str] | None = None) -> dict[str, object]:
    """Run `code` with this interpreter; its last line of output is a JSON object."""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=environment, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))
