"""Ingest throughput: `curate ingest` vs a datatrove pipeline vs the OpenWebMath extractor, same pages.

Input: the real HTML pages of ../shared/data/html (with their real URLs) wrapped into WARC response
records, repeated to 20,000+ records, written at run time to a temp dir (never committed).

    curate ingest          Spark local[2] (both cores): read WARC -> URLs -> decode -> math-aware extract -> langid
    curate (1 process)     the same steps through the local runner, one core
    datatrove              WarcReader -> Trafilatura(favour_precision) -> JsonlWriter, LocalPipelineExecutor, 2 workers
    openwebmath extractor  openwebmath-text-extract on the decoded HTML of the same records, one core

Prints docs/s per core for each (docs = HTML response records processed) and the ratios.

    python benchmarks/ingest.py [--records 20000] [--files 8] [--peer-records 2000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CURATE_SHARED_DATA", ROOT.parent / "shared" / "data"))


def build_warcs(out_dir: Path, records: int, files: int) -> list[Path]:
    from curate.testing.warcs import real_pages, write_warc

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


def run_curate(paths: list[Path], runner: str, work: Path) -> tuple[float, int]:
    from curate.stage import RunContext
    from curate.stages.ingest import run_extract

    ctx = RunContext(str(work / f"curate-{runner}"), runner=runner, master="local[2]")
    if runner == "spark":
        ctx.spark.range(1).count()  # JVM start is not ingest time
    start = time.perf_counter()
    manifest = run_extract(ctx, [str(p) for p in paths])
    elapsed = time.perf_counter() - start
    html = manifest.rows_out + sum(n for r, n in manifest.drops.items() if r not in ("not_response",))
    if runner == "spark":
        ctx.spark.stop()
    return elapsed, html


def run_datatrove(paths: list[Path], work: Path, tasks: int) -> tuple[float, int]:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.readers import WarcReader
    from datatrove.pipeline.writers import JsonlWriter

    data = work / "dt-input"
    data.mkdir(exist_ok=True)
    for path in paths:
        target = data / path.name
        if not target.exists():
            os.symlink(path, target)
    executor = LocalPipelineExecutor(
        pipeline=[
            WarcReader(str(data), glob_pattern="*.warc.gz"),
            Trafilatura(favour_precision=True),
            JsonlWriter(str(work / "dt-output")),
        ],
        tasks=tasks,
        workers=2,
        logging_dir=str(work / "dt-logs"),
    )
    start = time.perf_counter()
    executor.run()
    return time.perf_counter() - start, 0


def run_owm(paths: list[Path]) -> tuple[float, int]:
    import numpy as np
    from text_extract.extract import extract_text
    from text_extract.utils import Config

    from curate.io.warc import WarcFileReader
    from curate.steps.decode import decode_html

    np.random.seed(0)
    config = Config().sample()
    htmls = []
    for path in paths:
        for row in WarcFileReader(str(path)).rows():
            if row.payload:
                htmls.append(decode_html(row.payload, row.http_charset)[0])
    start = time.perf_counter()
    for html in htmls:
        # A page the extractor fails on still cost its time: count it.
        with contextlib.suppress(Exception):
            extract_text(html, config)
    return time.perf_counter() - start, len(htmls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20000, help="HTML response records for curate")
    parser.add_argument("--files", type=int, default=8, help="WARC files to spread them over")
    parser.add_argument("--peer-records", type=int, default=2000, help="records for datatrove and OWM (slow)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="curate-bench-ingest-"))
    try:
        big = build_warcs(work / "big", args.records, args.files) if (work / "big").mkdir() is None else []
        small = build_warcs(work / "small", args.peer_records, 2) if (work / "small").mkdir() is None else []
        print(
            f"input: {len(big)} WARC files, {sum(p.stat().st_size for p in big) / 2**20:.0f} MB gz; "
            f"peer input {len(small)} files",
            flush=True,
        )

        spark_s, spark_docs = run_curate(big, "spark", work)
        spark_rate = spark_docs / spark_s / 2
        print(f"curate ingest, Spark local[2]: {spark_docs} docs in {spark_s:.1f} s = {spark_rate:.0f} docs/s per core")

        local_s, local_docs = run_curate(small, "local", work)
        local_rate = local_docs / local_s
        print(f"curate ingest, local runner (1 core): {local_docs} docs in {local_s:.1f} s = {local_rate:.0f} docs/s")

        dt_s, _ = run_datatrove(small, work, tasks=2)
        dt_docs = local_docs
        dt_rate = dt_docs / dt_s / 2
        print(
            f"datatrove WarcReader->Trafilatura->JsonlWriter (2 workers): {dt_docs} docs in {dt_s:.1f} s "
            f"= {dt_rate:.1f} docs/s per core"
        )

        owm_s, owm_docs = run_owm(small)
        owm_rate = owm_docs / owm_s
        print(
            f"openwebmath-text-extract (1 core, extraction only): {owm_docs} docs in {owm_s:.1f} s "
            f"= {owm_rate:.1f} docs/s"
        )

        print("\nratios (docs/s per core)")
        print(f"  curate Spark / datatrove       {spark_rate / dt_rate:6.1f}x   (target >= 8x)")
        print(f"  curate local / datatrove       {local_rate / dt_rate:6.1f}x")
        print(f"  curate Spark / OWM extractor   {spark_rate / owm_rate:6.1f}x   (target >= 3x)")
        print(f"  curate local / OWM extractor   {local_rate / owm_rate:6.1f}x")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
