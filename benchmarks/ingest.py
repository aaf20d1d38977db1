"""Ingest cost: curate (local runner, Spark local[2]) vs the resiliparse-only floor vs datatrove vs OpenWebMath.

Input: every real HTML page of ../shared/data/html (with its real URL) wrapped into WARC response records, each
page the same number of times, written at run time to a temp dir (never committed). Two sets of files with the
same page mix: the main set (`--records`, `--files`) and a smaller peer set (`--peer-records`, all pages at
least once) for the slow peers.

Main set, in this process (CPU = this process and every descendant: the JVM, Spark's Python workers, the
parser guard children; Spark's JVM start-up is excluded from both wall and CPU). Each curate runner runs the
stage twice in one session, cold then warm (see `run_curate`): at a few thousand records the one-off costs
of a worker process are a large part of the cold figure.
    curate, local runner     run_extract(runner="local"): read WARC -> URLs -> decode -> math-aware extract -> langid
    curate, Spark local[2]   the same steps through mapInArrow, both cores
    resiliparse-only floor   FastWARC read -> decode -> resiliparse main-content text: no math, URLs or langid
Peer set, each a whole command (wall and CPU of the child and what it reaps, from os.wait4):
    curate ingest --local-runner   the CLI, interpreter start and imports included
    datatrove, one worker          WarcReader -> Trafilatura(favour_precision) -> JsonlWriter, 1 task, 1 worker
    openwebmath-text-extract       benchmarks/peers/owm_extract.py in .venv-peers (`make bench` builds it), on the
                                   HTML decoded here (decoding and WARC reading are not in its time)

Prints records/s, records per CPU-second and CPU ms per record for each, then the ratios against the targets of
issue [5/7]. The machine may be shared: compare ratios within one run.

    python benchmarks/ingest.py [--records 20000] [--files 8] [--peer-records 2000]

The floor runs before and after curate; the ratios use the cheaper of the two. `--slowest N` lists instead the
N pages that cost curate's extraction most, each against the floor's pass on the same page.

Default size (20,325 records in 8 files, peer set 2,439), 2026-12-06, idle 2 vCPUs, CPU ms per record. At
2bcc0db: local 2.92 cold / 2.61 warm, Spark 2.70 / 2.77, floor 1.82 (one run, after Spark), whole command
3.24 against datatrove 23.2 (7.2x); local/floor 0.62x / 0.70x. After pages travel to the guard as Arrow
views, header lines come from the inflated buffer and request headers are not parsed: local 2.61 / 2.34,
Spark 2.36 / 2.27, floor 1.57 before and 1.56 after, whole command 2.82 against datatrove 20.4 (7.2x);
local/floor 0.60x / 0.67x (the machine was faster in that run: the floor and datatrove moved as much).
Two runs of the same code (393d9d2), 2026-12-06 21:40 and 23:00: local 2.52 / 2.60 and 2.37 / 2.63, Spark
2.48 / 2.50 and 2.46 / 2.50, floor 1.64 / 1.72 and 1.63 / 1.75, whole command 3.38 and 2.82 against datatrove
22.71 and 23.26 (6.7x and 8.2x); local/floor 0.65x / 0.63x and 0.69x / 0.62x. Single runs move that much.
After the guard takes a batch of pages at once (502a2b3), 23:45: local 2.47 / 2.69, Spark 2.82 / 2.77, floor
1.65 before and 1.77 after (the machine slowed during the run), whole command 3.00 against datatrove 23.47
(7.8x); local/floor 0.67x / 0.61x; Spark/local 1.14x / 1.03x, Spark wall 0.62x / 0.54x. An alternating A/B of
the guard's two protocols on 5,691 records (two runs each, CPU ms a record, cold / warm): Spark 2.62 / 2.44 and
2.72 / 2.63 before, 2.54 / 2.34 and 2.74 / 2.30 after; local 2.71 / 2.57 and 2.53 / 2.52 before, 2.60 / 2.58
and 2.34 / 2.49 after. A second run after the change: local 2.43 / 2.46, Spark 2.75 / 2.48, floor 1.70 / 1.68,
whole command 2.97 against datatrove 20.66 (6.95x); local/floor 0.69x / 0.68x; Spark wall 0.62x / 0.54x. The
A/B for Spark alone on the default 8 files: 2.58 / 2.39 and 2.71 / 2.55 before, 2.65 / 2.63 and 2.47 / 2.31
after: no difference beyond the noise, where the single runs above gave cold Spark 2.75-2.82 after and
2.46-2.48 before.
Runs on 2026-12-06, idle 2 vCPUs, `--records 3000 --files 2 --peer-records 1000` (813 pages x 4 = 3,252
records), CPU ms per record. After Spark's Python workers write the stage themselves (worker_writes.py):
local runner 2.62 / 2.79 cold, 2.32 / 2.62 warm; Spark local[2] 2.89 / 3.00 cold, 2.44 / 2.58 warm; floor
1.66 / 1.70; Spark/local 1.10x / 1.08x cold, 1.05x / 0.98x warm; Spark wall 0.60x / 0.60x the local runner's
cold; local/floor 0.63x / 0.61x cold, 0.71x / 0.65x warm; datatrove 24.8 / 24.1 ms (a slower machine that
day), curate whole command 7.9x / 6.3x. The same day before that change: Spark 4.55 cold, 3.13 warm (1.43x /
1.22x the local runner). Earlier runs, after the one-query math rewrite, the sort-based language-id
counts and raw page buffers through the extraction guard (the second also with the installed pyspark in
local workers): local
runner 2.44 / 2.27 cold, 2.20 / 2.25 warm; Spark local[2] 4.38 / 4.02 cold, 2.62 / 2.63 warm; floor
1.46 / 1.47; Spark/local 1.79x / 1.77x cold, 1.19x / 1.17x warm; local/floor 0.60x / 0.65x cold, 0.67x /
0.65x warm; curate whole command 2.76 / 2.78 ms vs datatrove 19.11 / 19.19 ms: 6.9x. The session before:
local 2.56 / 2.39 cold, 2.24 / 2.21 warm; Spark 4.25 / 4.26 cold, 2.76 / 2.79 warm; 6.1x. Run to run the
figures move about +-10%, more for cold. Before that round: local 3.27 / 2.61, Spark 5.44 / 2.88, floor
1.42, 4.6x datatrove. With `--records 12000` (12,195 records, an earlier round), where the one-off costs
weigh less: Spark/local 1.29x cold, 1.07x warm; local/floor 0.62x; Spark wall 0.72x the local runner's.
Where the local runner's rest goes (2026-12-06, same files, uncommitted scripts): the guarded extraction
costs 1.85-1.93 ms a record against 1.62-1.69 in-process on the same pages, so the guard costs ~0.25 ms,
not the ~0.09 ms of the parent's side alone (a round trip with a 1-byte page 0.05 ms, carrying the average
156 KB page 0.085 ms more, the rest the child's own slower pass); sending 100 pages per request saved
~0.07 ms. In-process, our extraction is 1.62-1.69 ms against the floor's 1.43-1.53 ms parse and
main-content pass on the same stream. Reading with warcio (WarcFileReader) costs 0.38-0.41 ms a record
against FastWARC's 0.18 ms. Language id 0.25 ms, URL normalising 0.03 ms, the Parquet write and accounting
~0.05 ms. Spark's remaining cold excess is the Python workers' start and the JVM's first jobs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _paths import SHARED_DATA as SHARED
from peers import owm_client

from curate.manifest import Manifest, read_manifest


def build_warcs(out_dir: Path, records: int, files: int) -> list[Path]:
    from support.warcs import real_pages, write_warc

    pages = real_pages(SHARED)
    repeat = max(1, -(-records // len(pages)))
    # As even as the copies allow: a file is one Spark task, and one file longer than the others leaves a
    # core idle at the end (5 equal files on 2 cores run in 3 waves: 83 % of the machine).
    counts = [repeat // files + (index < repeat % files) for index in range(files)]
    paths = []
    for index, count in enumerate(counts):
        if count <= 0:
            break
        path = out_dir / f"bench-{index:03d}.warc.gz"
        write_warc(pages, path, repeat=count)
        paths.append(path)
    return paths


@dataclass
class Cost:
    name: str
    records: int
    wall: float
    cpu: float

    def line(self) -> str:
        return (
            f"{self.name:<40} {self.records:>7} {self.wall:>8.1f} {self.cpu:>8.1f} {self.records / self.wall:>9.1f} "
            f"{self.records / self.cpu:>10.1f} {1000 * self.cpu / self.records:>9.2f}"
        )


HEADER = f"{'run':<40} {'records':>7} {'wall s':>8} {'CPU s':>8} {'rec/s':>9} {'rec/CPU-s':>10} {'CPU ms/rec':>9}"


def tree_cpu_seconds() -> float:
    """User + system CPU so far of this process and each live descendant, each with the children it reaped.

    Not getrusage(RUSAGE_CHILDREN): Spark's Python workers are the JVM's children and are never reaped by us
    (benchmarks/scale.py saw it report 1.5 s for a 120 s run).
    """
    from support.cluster import descendants

    ticks = 0
    for pid in descendants(os.getpid()):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited between the listing and the read
        ticks += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def html_records(manifest: Manifest) -> int:
    """HTTP response records curate read: kept or dropped for a reason other than not being a response."""
    return manifest.rows_out + sum(n for r, n in manifest.drops.items() if r not in ("not_response",))


def run_curate(paths: list[Path], runner: str, work: Path) -> tuple[Cost, Cost]:
    """The ingest stage twice on the same files in one session: cold, then warm.

    Cold pays the one-off costs of a worker process: for Spark the JIT of the write path and the Python
    workers' start and imports; for both, the language model load and the extraction guard's child start.
    Warm is the second pass (Spark reuses its Python workers), what an executor pays per record once it
    has processed its first file.
    """
    from curate.stage import Inputs, RunContext
    from curate.stages.ingest import IngestConfig, run_extract

    costs = []
    name = "curate, Spark local[2]" if runner == "spark" else "curate, local runner"
    session = None
    for state in ("cold", "warm"):
        ctx = RunContext(str(work / f"curate-{runner}-{state}"), runner=runner, master="local[2]")
        if session is not None:
            ctx.use_session(session)
        elif runner == "spark":
            ctx.spark.range(1).count()  # JVM start is not ingest time
        cpu, start = tree_cpu_seconds(), time.perf_counter()
        manifest = run_extract(ctx, Inputs("01_extract", files=tuple(str(p) for p in paths)), IngestConfig())
        elapsed, cpu = time.perf_counter() - start, tree_cpu_seconds() - cpu
        costs.append(Cost(f"{name}, {state}", html_records(manifest), elapsed, cpu))
        if runner == "spark":
            session = ctx.spark
    if session is not None:
        session.stop()
    return costs[0], costs[1]


def run_floor(paths: list[Path], label: str = "") -> Cost:
    """The resiliparse-only floor: what reading, decoding and main-content extraction alone cost, one core."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding
    from resiliparse.parse.html import HTMLTree

    records = 0
    cpu, start = time.process_time(), time.perf_counter()
    for path in paths:
        with path.open("rb") as stream:
            for record in ArchiveIterator(stream, record_types=WarcRecordType.response, parse_http=True):
                body = record.reader.read()
                extract_plain_text(HTMLTree.parse(bytes_to_str(body, detect_encoding(body))), main_content=True)
                records += 1
    name = f"resiliparse-only floor{label}"
    return Cost(name, records, time.perf_counter() - start, time.process_time() - cpu)


def slowest_pages(count: int) -> None:
    """The pages of the mix that cost curate's extraction most, each against the floor's pass on the same page.

    In-process and best of three per page (the guard's cost is per record, not per page). `math` is what the
    rewrite pass does on the page: the DOM query always, then the planned formula edits.
    """
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding
    from resiliparse.parse.html import HTMLTree
    from support.warcs import real_pages

    from curate.extraction.decode import decode_html
    from curate.extraction.math_html import _rewrite_math
    from curate.extraction.record import extract_record

    def best(function: object, *args: object) -> float:
        timings = []
        for _ in range(3):
            start = time.process_time()
            function(*args)  # type: ignore[operator]
            timings.append(time.process_time() - start)
        return 1000 * min(timings)

    def floor_pass(body: bytes) -> None:
        extract_plain_text(HTMLTree.parse(bytes_to_str(body, detect_encoding(body))), main_content=True)

    rows = []
    for page in real_pages(SHARED):
        ours = best(extract_record, page.html, None, "text/html", 1)
        floor = best(floor_pass, page.html)
        html = decode_html(page.html, None)[0]
        tree = HTMLTree.parse(html)
        elements = len(tree.document.query_selector_all("*")) if tree.document is not None else 0
        rewrite = best(lambda text: _rewrite_math(HTMLTree.parse(text)), html) - best(HTMLTree.parse, html)
        source = page.source.relative_to(SHARED / "html")
        rows.append((ours, floor, rewrite, len(page.html), elements, str(source)))
    total_ours, total_floor = sum(r[0] for r in rows), sum(r[1] for r in rows)
    print(f"\n{len(rows)} pages, in-process extraction {total_ours:.0f} ms, floor {total_floor:.0f} ms")
    print(f"{'ours ms':>8} {'floor ms':>8} {'math ms':>8} {'KB':>6} {'elements':>8}  page")
    for ours, floor, rewrite, size, elements, source in sorted(rows, reverse=True)[:count]:
        print(f"{ours:8.1f} {floor:8.1f} {rewrite:8.1f} {size / 1024:6.0f} {elements:8}  {source[:70]}")
    print(f"largest excess over the floor ({'ours - floor'}):")
    for ours, floor, rewrite, size, elements, source in sorted(rows, key=lambda r: r[1] - r[0])[:count]:
        print(f"{ours:8.1f} {floor:8.1f} {rewrite:8.1f} {size / 1024:6.0f} {elements:8}  {source[:70]}")


def run_command(name: str, command: list[str], records: int, log: Path) -> Cost:
    """Wall and CPU of one whole command: the child and every descendant it reaped (os.wait4)."""
    with log.open("wb") as output:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise SystemExit(f"{name} failed (exit {child.returncode}, log {log}): {tail[0]}")
    return Cost(name, records, wall, usage.ru_utime + usage.ru_stime)


def run_datatrove_worker(input_dir: str, work: str) -> None:
    """The datatrove pipeline in this process: one task, one worker (LocalPipelineExecutor runs it inline)."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.readers import WarcReader
    from datatrove.pipeline.writers import JsonlWriter

    LocalPipelineExecutor(
        pipeline=[
            WarcReader(input_dir, glob_pattern="*.warc.gz"),
            Trafilatura(favour_precision=True),
            JsonlWriter(f"{work}/dt-output"),
        ],
        tasks=1,
        workers=1,
        logging_dir=f"{work}/dt-logs",
    ).run()


def run_datatrove(paths: list[Path], work: Path, records: int) -> Cost:
    data = work / "dt-input"
    data.mkdir(exist_ok=True)
    for path in paths:
        target = data / path.name
        if not target.exists():
            os.symlink(path, target)
    command = [sys.executable, __file__, "--datatrove-worker", str(data), str(work)]
    return run_command("datatrove, one worker (whole process)", command, records, work / "datatrove.log")


def run_curate_command(paths: list[Path], work: Path) -> Cost:
    curate = Path(sys.executable).with_name("curate")
    inputs = [argument for path in paths for argument in ("--input", str(path))]
    out = work / "curate-cli"
    command = [str(curate), "ingest", *inputs, "--out", str(out), "--local-runner"]
    cost = run_command("curate ingest --local-runner (whole cmd)", command, 0, work / "curate-cli.log")
    manifests = [read_manifest(stage) for stage in sorted(out.glob("*_extract"))]
    cost.records = sum(html_records(manifest) for manifest in manifests if manifest)
    return cost


def run_owm(paths: list[Path]) -> Cost | None:
    from curate.extraction.decode import decode_html
    from curate.io.warc import WarcFileReader

    if reason := owm_client.owm_missing():
        print(reason)
        return None
    htmls = []
    for path in paths:
        for row in WarcFileReader(str(path)).rows():
            if row.payload:
                htmls.append(decode_html(row.payload, row.http_charset)[0])
    owm = owm_client.run_owm(htmls)
    failed = sum(1 for error in owm.errors if error)
    if failed:
        print(f"openwebmath raised on {failed} of {len(htmls)} pages (their time is counted)")
    return Cost("openwebmath-text-extract (whole process)", len(htmls), owm.wall, owm.cpu)


def ratio(label: str, value: float, target: str = "") -> None:
    print(f"  {label:<62} {value:6.2f}x   {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20000, help="HTML response records in the main set")
    parser.add_argument("--files", type=int, default=8, help="WARC files to spread the main set over")
    parser.add_argument("--peer-records", type=int, default=2000, help="records in the peer set (slow peers)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--slowest", type=int, metavar="N", help="only list the N pages that cost most, and exit")
    parser.add_argument("--datatrove-worker", nargs=2, metavar=("INPUT", "WORK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.datatrove_worker:
        run_datatrove_worker(*args.datatrove_worker)
        return
    if args.slowest:
        slowest_pages(args.slowest)
        return
    work = Path(tempfile.mkdtemp(prefix="curate-bench-ingest-"))
    try:
        (work / "big").mkdir()
        (work / "small").mkdir()
        big = build_warcs(work / "big", args.records, args.files)
        small = build_warcs(work / "small", args.peer_records, 2)
        print(
            f"main set: {len(big)} WARC files, {sum(p.stat().st_size for p in big) / 2**20:.0f} MB gz; "
            f"peer set: {len(small)} files, {sum(p.stat().st_size for p in small) / 2**20:.0f} MB gz",
            flush=True,
        )
        print(HEADER)
        # The floor runs before and after curate, and the ratios take the cheaper run: a machine that slows
        # down during the benchmark (or Spark's JVM, alive until this process ends) must not flatter curate.
        floor_before = run_floor(big, ", before")
        print(floor_before.line(), flush=True)
        local, local_warm = run_curate(big, "local", work)
        print(local.line(), local_warm.line(), sep="\n", flush=True)
        spark, spark_warm = run_curate(big, "spark", work)
        print(spark.line(), spark_warm.line(), sep="\n", flush=True)
        floor_after = run_floor(big, ", after")
        print(floor_after.line(), flush=True)
        floor = min(floor_before, floor_after, key=lambda cost: cost.cpu / cost.records)
        print("peer set")
        peer_floor = run_floor(small)
        print(peer_floor.line(), flush=True)
        curate_cmd = run_curate_command(small, work)
        print(curate_cmd.line(), flush=True)
        datatrove = run_datatrove(small, work, peer_floor.records)
        print(datatrove.line(), flush=True)
        owm = run_owm(small)
        if owm:
            print(owm.line(), flush=True)

        def per_cpu(cost: Cost) -> float:
            return cost.records / cost.cpu

        print("\nratios")
        ratio("Spark CPU per record / local runner CPU per record", per_cpu(local) / per_cpu(spark), "(target <= 1.2x)")
        ratio("  the same, warm (second pass)", per_cpu(local_warm) / per_cpu(spark_warm))
        ratio("Spark wall / local runner wall (same files)", spark.wall / local.wall, "(target <= 0.6x, 2 files)")
        ratio("  the same, warm (second pass)", spark_warm.wall / local_warm.wall)
        ratio(
            "local runner per CPU-s / resiliparse-only floor (cheaper run)",
            per_cpu(local) / per_cpu(floor),
            "(target >= 0.7x)",
        )
        ratio("  the same, warm (second pass)", per_cpu(local_warm) / per_cpu(floor))
        ratio(
            "curate whole cmd / datatrove whole process, per CPU-s",
            per_cpu(curate_cmd) / per_cpu(datatrove),
            "(target >= 10x)",
        )
        ratio("curate whole cmd / datatrove whole process, wall", datatrove.wall / curate_cmd.wall)
        ratio("Spark / datatrove, records per CPU-s", per_cpu(spark) / per_cpu(datatrove))
        if owm:
            ratio("curate whole cmd / OWM whole process, per CPU-s", per_cpu(curate_cmd) / per_cpu(owm))
            ratio("Spark / OWM, records per CPU-s", per_cpu(spark) / per_cpu(owm))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
