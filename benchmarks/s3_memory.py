"""Memory of reading a large WARC from S3: `curate ingest` streams it, so peak RSS must not grow with the file.

Builds a WARC of about `--gb` GB by repeating the gzip members (records) of a shared WARC, uploads it to a
local moto S3 server (tests/support/s3_server.py), runs `curate ingest --local-runner --input s3://...` in
one process (the same reader an executor runs: curate.io.fs.open_input, 8 MiB reads), and samples the memory
(RSS, and PSS, see `pss_bytes`) of that process and all its children every 0.1 s. Prints the file size,
wall time, documents, and the peaks while 01_extract streams the file and over the whole command
(02_url_dedup under the local runner holds the URL, date and id of every document, so that figure grows a
little with the number of documents, not with the reader).

With `--master local[1]` the command runs on Spark instead: one executor task streams the file in a Python
worker, and the peaks of the Python side (the workers and the extraction children below the JVM) and of the
JVM (driver and executor in one process in local mode, `spark.driver.memory=1g`) are printed too.

    .venv/bin/python benchmarks/s3_memory.py            # ~1 GB
    .venv/bin/python benchmarks/s3_memory.py --gb 0.1   # quick check
    .venv/bin/python benchmarks/s3_memory.py --master 'local[1]'
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from _paths import ROOT
from support.cluster import JAVA_17, cmdline, descendants, rss_bytes
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


def pss_bytes(pid: int) -> int:
    """Proportional set size: resident memory with each shared page split among the processes that map it.
    Summed over forked processes (Spark's Python daemon and its workers share most pages) RSS counts shared
    pages once per process; PSS counts them once."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            match = re.search(r"^Pss:\s+(\d+) kB", rollup.read(), re.MULTILINE)
    except OSError:
        return 0
    return int(match.group(1)) * 1024 if match else 0


@dataclass
class Sample:
    extract_done: bool  # the streaming read is the first stage; the second (URL dedup) sorts document keys
    tree: tuple[int, int]  # (RSS, PSS) summed over the whole process tree
    jvm: tuple[int, int]  # of the Spark JVM ((0, 0) under the local runner)
    below_jvm: tuple[int, int]  # summed over the Python workers and their extraction children


def _memory(pids: list[int]) -> tuple[int, int]:
    return sum(rss_bytes(pid) for pid in pids), sum(pss_bytes(pid) for pid in pids)


def sample_memory(process: subprocess.Popen[bytes], extract_done: Path, samples: list[Sample]) -> None:
    """One Sample every 0.1 s while `process` runs."""
    while process.poll() is None:
        tree = descendants(process.pid)
        jvm = next((pid for pid in tree if cmdline(pid).split(" ")[0].endswith("/java")), None)
        below = [pid for pid in descendants(jvm) if pid != jvm] if jvm is not None else []
        samples.append(Sample(extract_done.exists(), _memory(tree), _memory([jvm] if jvm else []), _memory(below)))
        time.sleep(0.1)


def main() -> None:
    # A SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so the server and the ingest process are stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=TARGET_MB / 1000)
    parser.add_argument("--master", help="run on Spark with this master (default: the local runner)")
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
            command = [sys.executable, "-m", "curate.cli.main", "ingest"]
            command += ["--input", "s3://warcs/big/*.warc.gz", "--out", str(run_dir)]
            if args.master:
                command += ["--master", args.master, "--spark-conf", "spark.driver.memory=1g"]
            else:
                command += ["--local-runner"]
            env = server.env()
            if "JAVA_HOME" not in env and Path(JAVA_17).is_dir():
                env["JAVA_HOME"] = JAVA_17
            started = time.monotonic()
            with open(work / "ingest.log", "wb") as log:
                process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
                samples: list[Sample] = []
                done = run_dir / "01_extract" / "_manifest.json"
                sampler = threading.Thread(target=sample_memory, args=(process, done, samples))
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
    runner = f"Spark {args.master}" if args.master else "the local runner"
    print(f"records {manifest['rows_in']:,}, documents {manifest['rows_out']:,}, wall {wall:,.0f} s on {runner}")
    reading = [sample for sample in samples if not sample.extract_done]
    print(f"peak of the ingest process tree while 01_extract streams the WARC: {_peak(reading, 'tree')}")
    if args.master:
        print(f"  of it, the Python workers (executor side, with extraction children): {_peak(reading, 'below_jvm')}")
        print(f"  of it, the JVM (driver and executor, local mode): {_peak(reading, 'jvm')}")
    print(f"peak of the whole command (with 02_url_dedup): {_peak(samples, 'tree')}")


def _peak(samples: list[Sample], part: str) -> str:
    rss = max(getattr(sample, part)[0] for sample in samples) / 1e6
    pss = max(getattr(sample, part)[1] for sample in samples) / 1e6
    return f"RSS {rss:,.0f} MB (PSS {pss:,.0f} MB)"


if __name__ == "__main__":
    main()
