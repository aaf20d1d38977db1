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
    datatrove, one worker          WarcReader -> Trafilatura(favour_precision) -> ParquetWriter (zstd), 1 task, 1 worker
    openwebmath-text-extract       benchmarks/peers/owm_extract.py in .venv-peers (`make bench` builds it), on the
                                   HTML decoded here (decoding and WARC reading are not in its time)

Prints records/s, records per CPU-second and CPU ms per record for each, then the ratios against the targets of
issue [5/7]. The machine may be shared: compare ratios within one run.

    python benchmarks/ingest.py [--records 20000] [--files 8] [--peer-records 2000] [--rounds 1]

The floor runs before and after each local-runner pass, and each pass is set against the cheaper of its two
neighbours. With `--rounds N` the local runner and the floor alternate N times on the main set, and the curate
command and datatrove N times on the peer set (the order swapped each round); Spark and OpenWebMath run once.
The local/floor and curate/datatrove ratios are then the median of the rounds, with their range. Run to run the
same code moves 10-20 % on this 2-vCPU machine (four back-to-back runs of one curate command: 6.5-7.7 CPU s),
so one round decides nothing a few percent wide. `--slowest N` lists instead the N pages that cost curate's
extraction most, each against the floor's pass on the same page.

Measured figures, with the command and commit of each run, are in the closing notes of issue [5/7]; git log of
this file has the earlier ones.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
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
        run_dir = work / f"curate-{runner}-{state}"
        shutil.rmtree(run_dir, ignore_errors=True)  # a finished stage left by an earlier round would be skipped
        ctx = RunContext(str(run_dir), runner=runner, master="local[2]")
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
    from datatrove.pipeline.writers import ParquetWriter

    LocalPipelineExecutor(
        pipeline=[
            WarcReader(input_dir, glob_pattern="*.warc.gz"),
            Trafilatura(favour_precision=True),
            ParquetWriter(f"{work}/dt-output", compression="zstd"),  # what curate writes
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
    for left in ("dt-output", "dt-logs"):  # datatrove skips a task its logs mark completed
        shutil.rmtree(work / left, ignore_errors=True)
    command = [sys.executable, __file__, "--datatrove-worker", str(data), str(work)]
    return run_command("datatrove, one worker (whole process)", command, records, work / "datatrove.log")


def run_curate_command(paths: list[Path], work: Path) -> Cost:
    curate = Path(sys.executable).with_name("curate")
    inputs = [argument for path in paths for argument in ("--input", str(path))]
    out = work / "curate-cli"
    shutil.rmtree(out, ignore_errors=True)  # an earlier round's finished stage would be skipped
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


def ratios(label: str, values: list[float], target: str = "") -> None:
    """One ratio per round: the median, and the range when there is more than one round."""
    if len(values) == 1:
        ratio(label, values[0], target)
        return
    spread = f"[{min(values):.2f}-{max(values):.2f}]"
    print(f"  {label:<62} {statistics.median(values):6.2f}x   {spread} {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20000, help="HTML response records in the main set")
    parser.add_argument("--files", type=int, default=8, help="WARC files to spread the main set over")
    parser.add_argument("--peer-records", type=int, default=2000, help="records in the peer set (slow peers)")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds of local/floor and curate/datatrove")
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
        # The floor runs before and after each local-runner pass, and each pass is set against the cheaper of its
        # neighbours: a machine that slows down during the benchmark (or Spark's JVM, alive until this process
        # ends) must not flatter curate.
        floors = [run_floor(big, ", before")]
        print(floors[-1].line(), flush=True)
        locals_: list[tuple[Cost, Cost]] = []
        spark = spark_warm = None
        for round_number in range(args.rounds):
            locals_.append(run_curate(big, "local", work))
            print(*(cost.line() for cost in locals_[-1]), sep="\n", flush=True)
            if spark is None:
                spark, spark_warm = run_curate(big, "spark", work)
                print(spark.line(), spark_warm.line(), sep="\n", flush=True)
            floors.append(run_floor(big, ", after" if round_number == args.rounds - 1 else ""))
            print(floors[-1].line(), flush=True)
        assert spark is not None and spark_warm is not None
        print("peer set")
        peer_floor = run_floor(small)
        print(peer_floor.line(), flush=True)
        commands: list[tuple[Cost, Cost]] = []
        for round_number in range(args.rounds):
            if round_number % 2:
                datatrove = run_datatrove(small, work, peer_floor.records)
                curate_cmd = run_curate_command(small, work)
            else:
                curate_cmd = run_curate_command(small, work)
                datatrove = run_datatrove(small, work, peer_floor.records)
            commands.append((curate_cmd, datatrove))
            print(curate_cmd.line(), datatrove.line(), sep="\n", flush=True)
        owm = run_owm(small)
        if owm:
            print(owm.line(), flush=True)

        def per_cpu(cost: Cost) -> float:
            return cost.records / cost.cpu

        def cheaper_floor(index: int) -> Cost:
            return min(floors[index], floors[index + 1], key=lambda cost: cost.cpu / cost.records)

        local, local_warm = locals_[0]
        curate_cmd = commands[0][0]
        print("\nratios" + (f" (median of {args.rounds} rounds [range] where marked)" if args.rounds > 1 else ""))
        ratio("Spark CPU per record / local runner CPU per record", per_cpu(local) / per_cpu(spark), "(target <= 1.2x)")
        ratio("  the same, warm (second pass)", per_cpu(local_warm) / per_cpu(spark_warm))
        ratio("Spark wall / local runner wall (same files)", spark.wall / local.wall, "(target <= 0.6x, 2 files)")
        ratio("  the same, warm (second pass)", spark_warm.wall / local_warm.wall)
        ratios(
            "local runner per CPU-s / resiliparse-only floor (cheaper run)",
            [per_cpu(cold) / per_cpu(cheaper_floor(index)) for index, (cold, _) in enumerate(locals_)],
            "(target >= 0.7x)",
        )
        ratios(
            "  the same, warm (second pass)",
            [per_cpu(warm) / per_cpu(cheaper_floor(index)) for index, (_, warm) in enumerate(locals_)],
        )
        ratios(
            "curate whole cmd / datatrove whole process, per CPU-s",
            [per_cpu(mine) / per_cpu(theirs) for mine, theirs in commands],
            "(target >= 10x)",
        )
        ratios(
            "curate whole cmd / datatrove whole process, wall", [theirs.wall / mine.wall for mine, theirs in commands]
        )
        ratio("Spark / datatrove, records per CPU-s", per_cpu(spark) / per_cpu(commands[0][1]))
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
