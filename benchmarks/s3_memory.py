"""Memory of reading a large WARC from S3: `curate ingest` streams it, so peak RSS must not grow with the file.

Builds a WARC of about `--gb` GB by repeating the gzip members (records) of a shared WARC, uploads it to a
local moto S3 server (tests/support/s3_server.py), runs `curate ingest --local-runner --input s3://...` in
one process (the same reader an executor runs: curate.io.fs.open_input, 8 MiB reads), and samples the RSS of
that process and all its children every 0.1 s. Prints the file size, wall time, documents, and peak RSS while
01_extract streams the file and over the whole command (02_url_dedup under the local runner holds the URL,
date and id of every document, so that figure grows a little with the number of documents, not with the
reader).

    .venv/bin/python benchmarks/s3_memory.py            # ~1 GB
    .venv/bin/python benchmarks/s3_memory.py --gb 0.1   # quick check
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _paths import ROOT
from support.cluster import descendants, rss_bytes
from support.s3_server import s3_server

SOURCE = ROOT.parent / "shared" / "data" / "web-warc" / "ia-heritrix-sample-2008" / "web_sample.warc.gz"
TARGET_MB = 1000.0


def build_warc(path: Path, target_bytes: int) -> int:
    """`SOURCE` is one gzip member per record, so whole copies of it concatenated are a valid WARC."""
    chunk = SOURCE.read_bytes()
    copies = max(1, target_bytes // len(chunk))
    with open(path, "wb") as out:
        for _ in range(copies):
            out.write(chunk)
    return copies


def sample_rss(process: subprocess.Popen[bytes], extract_done: Path, samples: list[tuple[bool, int]]) -> None:
    """(01_extract committed yet?, RSS of the process tree) every 0.1 s: the streaming read is the first stage;
    the second (URL dedup) sorts the keys of every extracted document."""
    while process.poll() is None:
        samples.append((extract_done.exists(), sum(rss_bytes(pid) for pid in descendants(process.pid))))
        time.sleep(0.1)


def main() -> None:
    # A SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so the server and the ingest process are stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=TARGET_MB / 1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="curate-s3-memory-") as scratch:
        work = Path(scratch)
        warc = work / "big.warc.gz"
        copies = build_warc(warc, int(args.gb * 1e9))
        size = warc.stat().st_size
        with s3_server(work) as server:
            server.create_bucket("warcs")
            server.upload(warc, "warcs", "big/big.warc.gz")
            warc.unlink()  # only the server holds it now
            run_dir = work / "run"
            command = [sys.executable, "-m", "curate.cli.main", "ingest", "--local-runner"]
            command += ["--input", "s3://warcs/big/*.warc.gz", "--out", str(run_dir)]
            started = time.monotonic()
            with open(work / "ingest.log", "wb") as log:
                process = subprocess.Popen(command, env=server.env(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
                samples: list[tuple[bool, int]] = []
                done = run_dir / "01_extract" / "_manifest.json"
                sampler = threading.Thread(target=sample_rss, args=(process, done, samples))
                sampler.start()
                try:
                    code = process.wait()
                finally:
                    if process.poll() is None:
                        process.terminate()
                        process.wait()
                    sampler.join()
            wall = time.monotonic() - started
            if code != 0:
                sys.exit(f"ingest failed ({code}):\n{(work / 'ingest.log').read_text()[-3000:]}")
            manifest = json.loads((run_dir / "01_extract" / "_manifest.json").read_text())
    print(f"WARC: {size / 1e6:,.0f} MB ({copies} copies of {SOURCE.name}), read from s3:// on moto_server")
    print(f"records {manifest['rows_in']:,}, documents {manifest['rows_out']:,}, wall {wall:,.0f} s")
    reading = [rss for done, rss in samples if not done]
    print(f"peak RSS of the ingest process tree while 01_extract streams the WARC: {max(reading) / 1e6:,.0f} MB")
    print(f"peak RSS of the whole command (with 02_url_dedup): {max(rss for _, rss in samples) / 1e6:,.0f} MB")


if __name__ == "__main__":
    main()
