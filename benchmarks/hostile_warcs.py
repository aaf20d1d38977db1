"""Hostile WARC files through `WarcFileReader.rows()`: peak RSS and wall time per file, and how many records
of a ClueWeb09-form file each reader gets (curate, warcio, fastwarc).

Each file is read in a fresh child process, whose peak RSS is VmHWM from /proc (getrusage's ru_maxrss is
carried over exec, so it would report the parent's peak). Files are generated under a temporary directory:
content-encoding bombs (br, gzip, deflate; 1 GiB of zeros each), header-line bombs (768 MiB line in the
WARC or the HTTP header block), and a ClueWeb-form WARC/0.18 file of 100 responses.

    .venv/bin/python benchmarks/hostile_warcs.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _paths  # noqa: F401

_CHILD = """
import json, re, sys, time
path, reader = sys.argv[1], sys.argv[2]
start = time.perf_counter()
records, reasons, error = 0, {}, None
try:
    if reader == "curate":
        from curate.io.warc import WarcFileReader
        for row in WarcFileReader(path).rows():
            records += row.warc_record_type is not None
            reasons[str(row.drop_reason)] = reasons.get(str(row.drop_reason), 0) + 1
    elif reader == "warcio":
        from warcio.archiveiterator import ArchiveIterator
        with open(path, "rb") as stream:
            for record in ArchiveIterator(stream):
                records += 1
    else:
        from fastwarc.warc import ArchiveIterator
        with open(path, "rb") as stream:
            for record in ArchiveIterator(stream):
                records += 1
except Exception as exc:
    error = " ".join(f"{type(exc).__name__}: {exc}".split())[:80]
seconds = time.perf_counter() - start
peak = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) / 1024
print(json.dumps({"records": records, "reasons": reasons, "error": error, "seconds": seconds, "peak_mb": peak}))
"""


def _run(path: Path, reader: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), reader], capture_output=True, text=True, timeout=600, check=True
    )
    return json.loads(done.stdout)


def main() -> None:
    from support.hostile_warcs import content_encoding_bomb, header_line_bomb, write_clueweb_warc

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = [content_encoding_bomb(root / f"bomb-{e}.warc.gz", e) for e in ("br", "gzip", "deflate")]
        files += [header_line_bomb(root / f"header-{b}.warc.gz", block=b) for b in ("warc", "http")]
        clueweb = write_clueweb_warc(root / "clueweb.warc.gz").path
        files.append(clueweb)
        print(f"{'file':<22} {'bytes':>9} {'peak RSS MB':>11} {'seconds':>8}  rows by reason")
        for path in files:
            started = time.perf_counter()
            report = _run(path, "curate")
            assert report["error"] is None, report
            print(
                f"{path.name:<22} {path.stat().st_size:>9} {report['peak_mb']:>11.0f} {report['seconds']:>8.2f}  "
                f"{report['reasons']}  (child {time.perf_counter() - started:.1f} s)"
            )
        print("\nClueWeb-form WARC/0.18, 101 records (warcinfo + 100 responses): records each reader returns")
        for reader in ("curate", "warcio", "fastwarc"):
            report = _run(clueweb, reader)
            print(f"  {reader:<9} {report['records']:>4} records  {report['error'] or ''}")


if __name__ == "__main__":
    main()
