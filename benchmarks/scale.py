"""Scale check: the same pipeline on 1x and 4x the input with memory capped; time and peak memory side by side.

Input: the ~800 real pages under ../shared/data/html wrapped into Common Crawl-style WARC files at run time
(support.warcs), in a temp dir that is removed afterwards. 1x is `--copies` copies of every page, each
copy under its own URL (`?copy=N`, so URL dedup keeps them all), spread over `--parts` files per copy; 4x is
four times as many files of the same size, which is how a crawl grows. Defaults: 0.6 GiB of uncompressed WARC
at 1x, 2.4 GiB at 4x.

The pipeline runs as a subprocess, `curate ingest` (default) or `curate run` (`--command run`, demo recipe),
on `local[2]` with `spark.driver.memory=2g` (in local mode the executors live in the driver JVM), or on a
standalone cluster of 2 workers x 1 core x 2 GB (`--master cluster`). Memory is sampled from /proc every
`--interval` seconds and summed over every process of the run: the driver's tree (CLI, JVM, Python workers)
and, on a cluster, the executors' trees. RSS counts pages shared by forked Python workers once per process,
so PSS (each shared page split between its users) is printed too. Time is the subprocess's wall time (JVM
start included), the sum of the stages' own `wall_seconds` from their manifests, and CPU seconds summed
over the processes, which other jobs on the machine barely change (wall time on a shared VM does).

    python benchmarks/scale.py [--sizes 1 4] [--copies 4] [--parts 4] [--master local[2]|cluster]
                               [--command ingest|run] [--keep DIR]

Targets (issue 7): no OOM, time(4x) / time(1x) <= 4.4, peak memory flat (ratio near 1).
Copies of a page have the same text, so under `--command run` near-dedup collapses them and the stages after
it see the same documents at 1x and 4x: their part of the time ratio is flattered. Ingest is unaffected.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from _paths import ROOT
from _paths import SHARED_DATA as SHARED
from support.cluster import (
    JAVA_17,
    StandaloneCluster,
    alive,
    cmdline,
    descendants,
    rss_bytes,
    standalone_cluster,
)
from support.warcs import Page, real_pages, write_warc

OOM_SIGNS = re.compile(r"OutOfMemoryError|MemoryError|Cannot allocate memory|exit code 137|killed by signal 9", re.I)


# --- input --------------------------------------------------------------------------------------------


def _with_copy(url: str, copy: int) -> str:
    if copy == 0:
        return url
    base, _, fragment = url.partition("#")
    joined = f"{base}{'&' if '?' in base else '?'}copy={copy}"
    return f"{joined}#{fragment}" if fragment else joined


def build_inputs(out_dir: Path, copies: int, parts: int) -> list[Path]:
    """`copies` x `parts` WARC files; file (c, p) holds every `parts`-th page, URLs marked with copy c."""
    pages = real_pages(SHARED)
    paths = []
    for copy in range(copies):
        for part in range(parts):
            path = out_dir / f"scale-c{copy:03d}-p{part:02d}.warc.gz"
            if not path.exists():
                chunk = [Page(_with_copy(p.url, copy), p.html, p.source) for p in pages[part::parts]]
                write_warc(chunk, path)
            paths.append(path)
    return paths


def uncompressed_size(path: Path) -> int:
    """Bytes of WARC in a file of concatenated gzip members (streamed: the 4x input is larger than RAM we grant)."""
    total = 0
    with open(path, "rb") as handle:
        decompressor = zlib.decompressobj(31)
        while chunk := handle.read(1 << 20):
            while chunk:
                total += len(decompressor.decompress(chunk))
                if decompressor.eof:
                    chunk = decompressor.unused_data
                    decompressor = zlib.decompressobj(31)
                else:
                    chunk = b""
    return total


# --- memory sampling ----------------------------------------------------------------------------------


def pss_bytes(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    match = re.search(r"^Pss:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (all its threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class MemoryPeak:
    """Peaks over the run; each is its own maximum (the JVM and Python peaks need not coincide)."""

    rss: int = 0
    pss: int = 0
    jvm_rss: int = 0
    python_rss: int = 0
    processes: int = 0
    samples: int = 0


class Sampler(threading.Thread):
    """Samples the run's processes every `interval` seconds: memory peaks, a trace, and CPU time.

    CPU time is summed from each process's own counters as last seen, not from getrusage(RUSAGE_CHILDREN),
    which only counts descendants reaped all the way up (it reported 1.5 s for a 120 s run here); a
    process's last `interval` of work can be missed.
    """

    def __init__(self, driver_pid: int, cluster: StandaloneCluster | None, interval: float) -> None:
        super().__init__(daemon=True)
        self.driver_pid = driver_pid
        self.cluster = cluster
        self.interval = interval
        self.peak = MemoryPeak()
        self.trace: list[tuple[float, int, int, int, int]] = []  # seconds, RSS total, JVM, Python, processes
        self.cpu: dict[int, float] = {}
        self._stop_event = threading.Event()

    def pids(self) -> set[int]:
        pids = set(descendants(self.driver_pid))
        if self.cluster is not None:
            for executor in self.cluster.executor_pids():
                pids.update(descendants(executor))
        return {pid for pid in pids if alive(pid)}

    def run(self) -> None:
        started = time.monotonic()
        while not self._stop_event.is_set():
            pids = self.pids()
            rss = {pid: rss_bytes(pid) for pid in pids}
            jvm = sum(v for pid, v in rss.items() if cmdline(pid).split(" ", 1)[0].endswith("java"))
            total = sum(rss.values())
            for pid in pids:
                self.cpu[pid] = max(self.cpu.get(pid, 0.0), cpu_seconds(pid))
            peak = self.peak
            peak.samples += 1
            peak.rss, peak.jvm_rss, peak.python_rss = (
                max(peak.rss, total),
                max(peak.jvm_rss, jvm),
                max(peak.python_rss, total - jvm),
            )
            peak.pss = max(peak.pss, sum(pss_bytes(pid) for pid in pids))
            peak.processes = max(peak.processes, len(pids))
            self.trace.append((round(time.monotonic() - started, 1), total, jvm, total - jvm, len(pids)))
            self._stop_event.wait(self.interval)

    def stop(self) -> tuple[MemoryPeak, float]:
        self._stop_event.set()
        self.join()
        return self.peak, sum(self.cpu.values())


def quarters(trace: list[tuple[float, int, int, int, int]], column: int) -> list[int]:
    """The maximum of a trace column in each quarter of the run: growth shows as a rising sequence."""
    if not trace:
        return []
    size = max(1, -(-len(trace) // 4))
    return [max(sample[column] for sample in trace[i : i + size]) for i in range(0, len(trace), size)]


# --- one run ------------------------------------------------------------------------------------------


@dataclass
class Result:
    size: int
    files: int
    compressed_bytes: int
    warc_bytes: int
    wall_seconds: float
    stage_seconds: float
    cpu_seconds: float
    memory: MemoryPeak
    trace: list[tuple[float, int, int, int, int]]
    exit_code: int
    oom: bool
    stages: dict[str, float] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)


def run_once(
    size: int,
    paths: list[Path],
    out: Path,
    args: argparse.Namespace,
    cluster: StandaloneCluster | None,
) -> Result:
    env = dict(cluster.env) if cluster else dict(os.environ)
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    if "JAVA_HOME" not in env and os.path.isdir(JAVA_17):
        env["JAVA_HOME"] = JAVA_17
    master = cluster.master_url if cluster else args.master
    command = [sys.executable, "-m", "curate.cli.main", args.command]
    command += [arg for path in paths for arg in ("--input", str(path))]
    command += ["--out", str(out), "--master", master]
    if args.command == "run":
        command += ["--config", str(ROOT / "pipelines" / "demo.yaml")]
    conf = {
        "spark.driver.memory": args.driver_memory,
        "spark.sql.shuffle.partitions": str(args.shuffle_partitions),
        **(cluster.spark_conf if cluster else {}),
    }
    if args.pyspark_memory:
        conf["spark.executor.pyspark.memory"] = args.pyspark_memory
    command += [arg for key, value in conf.items() for arg in ("--spark-conf", f"{key}={value}")]
    log_path = out.parent / f"{out.name}.log"
    started = time.monotonic()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        sampler = Sampler(process.pid, cluster, args.interval)
        sampler.start()
        code = process.wait()
    elapsed = time.monotonic() - started
    memory, cpu = sampler.stop()
    text = log_path.read_text(errors="replace")
    if code != 0:
        print("\n".join(text.splitlines()[-30:]), file=sys.stderr)
    stages, rows = {}, {}
    for manifest in sorted(out.rglob("_manifest.json")):
        payload = json.loads(manifest.read_text())
        stages[payload["stage"]] = payload["wall_seconds"]
        rows[payload["stage"]] = payload["rows_out"]
    return Result(
        size=size,
        files=len(paths),
        compressed_bytes=sum(p.stat().st_size for p in paths),
        warc_bytes=sum(uncompressed_size(p) for p in paths),
        wall_seconds=round(elapsed, 1),
        stage_seconds=round(sum(stages.values()), 1),
        cpu_seconds=round(cpu, 1),
        memory=memory,
        trace=sampler.trace,
        exit_code=code,
        oom=bool(OOM_SIGNS.search(text)) or code in (-9, 137),
        stages=stages,
        rows=rows,
    )


def _gb(value: int) -> str:
    return f"{value / 2**30:.2f}"


def report(results: list[Result]) -> None:
    header = f"{'size':>4} {'files':>5} {'WARC GiB':>8} {'gz GiB':>6} {'wall s':>7} {'stages s':>8} {'CPU s':>7} "
    header += f"{'peak RSS GiB':>12} {'JVM':>5} {'Python':>6} {'peak PSS GiB':>12} {'procs':>5}  exit"
    print(header)
    for r in results:
        m = r.memory
        print(
            f"{r.size:>3}x {r.files:>5} {_gb(r.warc_bytes):>8} {_gb(r.compressed_bytes):>6} {r.wall_seconds:>7.1f} "
            f"{r.stage_seconds:>8.1f} {r.cpu_seconds:>7.1f} {_gb(m.rss):>12} {_gb(m.jvm_rss):>5} {_gb(m.python_rss):>6} "
            f"{_gb(m.pss):>12} "
            f"{m.processes:>5}  {r.exit_code}{' OOM' if r.oom else ''}"
        )
    for r in results:
        print(f"  {r.size}x stages: " + ", ".join(f"{s} {t:.1f}s ({r.rows[s]:,} rows)" for s, t in r.stages.items()))
        for name, column in (("JVM", 2), ("Python", 3)):
            print(
                f"  {r.size}x {name} RSS GiB, max per quarter of the run: "
                + " ".join(_gb(v) for v in quarters(r.trace, column))
            )
    if len(results) >= 2:
        small, large = results[0], results[-1]
        scale = large.size / small.size
        print(f"data ratio (WARC bytes) {large.warc_bytes / small.warc_bytes:.2f} for {scale:.0f}x")
        print(f"time ratio, wall        {large.wall_seconds / small.wall_seconds:.2f}  (target <= {1.1 * scale:.1f})")
        print(f"time ratio, stages      {large.stage_seconds / max(small.stage_seconds, 1e-9):.2f}")
        if small.cpu_seconds > 0:
            print(
                f"CPU time ratio          {large.cpu_seconds / small.cpu_seconds:.2f}  (barely affected by other load)"
            )
        print(f"peak RSS ratio          {large.memory.rss / max(small.memory.rss, 1):.2f}  (target: flat, ~1)")
        print(f"peak PSS ratio          {large.memory.pss / max(small.memory.pss, 1):.2f}")
        print("no OOM" if not any(r.oom or r.exit_code for r in results) else "FAILED: a run died (see above)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4], help="multiples of the 1x input")
    parser.add_argument("--copies", type=int, default=5, help="copies of every real page in the 1x input")
    parser.add_argument("--parts", type=int, default=4, help="files per copy")
    parser.add_argument("--master", default="local[2]", help="local[N], or `cluster` for a 2-worker standalone one")
    parser.add_argument("--command", choices=["ingest", "run"], default="ingest")
    parser.add_argument("--driver-memory", default="2g")
    parser.add_argument("--executor-memory", default="2g", help="per worker and executor (--master cluster)")
    parser.add_argument("--pyspark-memory", default=None, help="spark.executor.pyspark.memory (off by default)")
    parser.add_argument("--shuffle-partitions", type=int, default=8)
    parser.add_argument("--interval", type=float, default=0.5, help="memory sampling period, seconds")
    parser.add_argument("--keep", type=Path, default=None, help="generate into and keep this directory")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="curate-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        with ExitStack() as stack:
            cluster = None
            if args.master == "cluster":
                cluster = stack.enter_context(
                    standalone_cluster(workers=2, cores=1, memory=args.executor_memory, work_dir=work / "cluster")
                )
            started = time.monotonic()
            (work / "warc").mkdir(exist_ok=True)
            all_paths = build_inputs(work / "warc", args.copies * max(args.sizes), args.parts)
            print(f"generated {len(all_paths)} WARC files in {time.monotonic() - started:.0f} s under {work}")
            for size in args.sizes:
                paths = all_paths[: args.copies * size * args.parts]
                out = work / f"run-{size}x"
                shutil.rmtree(out, ignore_errors=True)
                result = run_once(size, paths, out, args, cluster)
                results.append(result)
                print(
                    f"{size}x: {result.wall_seconds:.1f} s, peak RSS {_gb(result.memory.rss)} GiB, exit {result.exit_code}"
                )
                shutil.rmtree(out, ignore_errors=True)
        report(results)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps([r.__dict__ | {"memory": r.memory.__dict__} for r in results], indent=2))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if results and not any(r.oom or r.exit_code for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
