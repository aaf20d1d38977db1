"""Runs `owm_extract.py` under `.venv-peers/bin/python` for the benchmarks (which run under `.venv`)."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
OWM_SCRIPT = Path(__file__).with_name("owm_extract.py")


@dataclass
class OwmRun:
    texts: list[str]
    seconds: list[float]  # per page, fastest of the repeats, measured inside the peer process
    errors: list[str | None]
    wall: float  # the whole child command: interpreter start, imports, reading and writing JSONL included
    cpu: float  # user + system CPU of the child and its reaped descendants (os.wait4)


def owm_missing() -> str | None:
    """Why the OWM peer cannot run, in one line, or None when its environment is there."""
    if PEERS_PYTHON.exists():
        return None
    return f"openwebmath skipped: {PEERS_PYTHON.relative_to(ROOT)} is missing; run `make bench` to build it"


def run_owm(htmls: list[str], repeat: int = 1) -> OwmRun:
    with tempfile.TemporaryDirectory(prefix="curate-bench-owm-") as tmp:
        pages, out, log = Path(tmp) / "pages.jsonl", Path(tmp) / "out.jsonl", Path(tmp) / "stderr.log"
        with pages.open("w", encoding="utf-8") as handle:
            for html in htmls:
                handle.write(json.dumps({"html": html}) + "\n")
        command = [str(PEERS_PYTHON), str(OWM_SCRIPT), "--input", str(pages), "--output", str(out)]
        with log.open("wb") as stderr:
            start = time.perf_counter()
            child = subprocess.Popen([*command, "--repeat", str(repeat)], stdout=subprocess.DEVNULL, stderr=stderr)
            # wait4, not Popen.wait: it returns the CPU of this child alone, not of every child reaped so far.
            _, status, usage = os.wait4(child.pid, 0)
            wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise SystemExit(f"openwebmath peer failed (exit {child.returncode}): {tail[0]}")
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    return OwmRun(
        texts=[row["text"] for row in rows],
        seconds=[row["seconds"] for row in rows],
        errors=[row["error"] for row in rows],
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
    )
