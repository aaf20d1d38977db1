"""Where the local runner's ingest CPU goes, part by part, against the resiliparse-only floor's own parts.

`benchmarks/ingest.py` gives the totals and the ratios of issue [5/7]; this gives the breakdown behind them,
from one command, on the same kind of input (every real HTML page of ../shared/data/html wrapped into WARC
response records, the whole mix repeated):

1. The stage as `curate ingest --local-runner` runs it (`run_step_stage` with the ingest steps), split into the
   main process and the extraction guard's child (from /proc), against the floor on the same files.
2. The main process per step: each step's own CPU (its output stream's, minus its input's), and the rest
   (Parquet writing, accounting, progress).
3. Each page's extraction in this process, phase by phase: the floor's (charset detection, decoding, parsing,
   main-content text) against curate's (sniffing and decoding, parsing, the nesting check, the math rewrite,
   main-content text, the formula spans) on every page of the mix, the mean of `--passes` passes. The sum of
   curate's phases is printed beside `extract_record` itself, which is what the guard's child runs. The
   child's CPU per record in (1) minus this is what the child pays in the stage beyond the function itself:
   its side of the guard's protocol, and whatever else differs there (the stage's other steps run between
   its records, and share its caches). Below it, costs inside two phases: in parsing, which the floor pays
   too, the decoded text's encoding back to UTF-8 that `HTMLTree.parse` asks CPython for; in the math
   rewrite, one DOM walk, the least that its one selector query can cost.
4. The guard's own cost: every page through `extract_record` in this process and through the guard (this
   process and its child, in batches of a reader's 100 pages as ExtractStep sends them), the two passes
   alternating with the order swapped each round, the median of `--rounds`.
5. The fixed cost of one `curate ingest --local-runner` command on a one-record WARC (interpreter, imports,
   the guard child's start, the stage bookkeeping), as a whole command (os.wait4).

    python benchmarks/ingest_breakdown.py [--records 5000] [--files 2] [--passes 3] [--rounds 8]

All figures are CPU ms: per record in (1) and (2), per page in (3) and (4), per command in (5). Run it on an
idle machine; run to run, figures move by about 5 %.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
from _paths import SHARED_DATA as SHARED
from ingest import build_warcs, html_records, run_command, run_floor, tree_cpu_seconds


class TimedStep:
    """A step whose output stream's CPU is counted: its own work plus its input's, pulled inside its `next`."""

    def __init__(self, step: Any) -> None:
        self.step = step
        self.name = step.name
        self.cpu = 0.0

    def config(self) -> dict[str, Any]:
        return dict(self.step.config())

    def output_schema(self, input_schema: pa.Schema) -> pa.Schema:
        schema: pa.Schema = self.step.output_schema(input_schema)
        return schema

    def apply(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        stream = iter(self.step.apply(batches))
        while True:
            start = time.process_time()
            try:
                batch = next(stream)
            except StopIteration:
                self.cpu += time.process_time() - start
                return
            self.cpu += time.process_time() - start
            yield batch


def stage_breakdown(paths: list[Path], work: Path) -> tuple[int, float, float, list[tuple[str, float]]]:
    """Records, main-process CPU, guard-child CPU and each step's own main-process CPU of one local stage.

    The steps are `ingest_steps`, run by `run_step_stage` with the arguments `run_extract` gives it, each
    wrapped to count its CPU: the same work as the stage, in the same process.
    """
    from curate.stage import Inputs, RunContext
    from curate.stage_rows import run_step_stage
    from curate.stages import ingest as ingest_stage

    # A first stage on one file starts the guard's child and loads the language model: one-off costs that
    # benchmarks/ingest.py reports as the cold pass.
    warm_up = RunContext(str(work / "warm-up"), runner="local", master="local[2]")
    ingest_stage.run_extract(warm_up, Inputs("01_extract", files=(str(paths[0]),)), ingest_stage.IngestConfig())

    timed = [TimedStep(step) for step in ingest_stage.ingest_steps(ingest_stage.IngestConfig())]
    ctx = RunContext(str(work / "timed"), runner="local", master="local[2]")
    tree_start, main_start = tree_cpu_seconds(), time.process_time()
    manifest = run_step_stage(
        ctx,
        Inputs("01_extract", files=tuple(str(path) for path in paths)),
        timed,  # type: ignore[arg-type]
        input_schema=ingest_stage.WARC_FILES,
        count_by=("warc_path",),
        collect_reasons=ingest_stage.FILE_PROBLEMS,
        accounting=ingest_stage._per_file_accounting,
    )
    main = time.process_time() - main_start
    child = tree_cpu_seconds() - tree_start - main
    own, upstream = [], 0.0
    for step in timed:
        own.append((step.name, step.cpu - upstream))
        upstream = step.cpu
    own.append(("the rest: writing Parquet, accounting, progress", main - upstream))
    return html_records(manifest), main, child, own


def page_phases(passes: int) -> tuple[int, dict[str, float], dict[str, float], float]:
    """Per page, the mean of `passes` after a first one: the floor's phases, curate's phases, and `extract_record` whole."""
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding
    from resiliparse.parse.html import HTMLTree
    from support.warcs import real_pages

    from curate.extraction import math_html
    from curate.extraction.decode import decode_html, sniff_html
    from curate.extraction.record import extract_record

    bodies = [page.html for page in real_pages(SHARED)]

    def mean_of(run: Callable[[dict[str, float]], None]) -> dict[str, float]:
        run({})  # first calls: lazy imports and compiled patterns, paid once a worker
        spent: dict[str, float] = {}
        for _ in range(passes):
            run(spent)
        return {phase: 1000 * seconds / passes / len(bodies) for phase, seconds in spent.items()}

    def timed(spent: dict[str, float], phase: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        result = function(*args, **kwargs)
        spent[phase] = spent.get(phase, 0.0) + time.process_time() - start
        return result

    def floor(spent: dict[str, float]) -> None:
        for body in bodies:
            encoding = timed(spent, "charset detection", detect_encoding, body)
            html = timed(spent, "decoding", bytes_to_str, body, encoding)
            tree = timed(spent, "parsing", HTMLTree.parse, html)
            timed(spent, "main-content text", extract_plain_text, tree, main_content=True)

    def formula_spans(text: str) -> list[bool]:
        return [math_html._looks_like_formula(span) for span in math_html.iter_math_spans(text)]

    def curate(spent: dict[str, float]) -> None:
        for body in bodies:
            timed(spent, "charset detection", sniff_html, body, declared_html=True)
            try:
                html, _ = timed(spent, "decoding", decode_html, body, None)
            except Exception:  # a page that extract_record drops as undecodable: none of the mix today
                continue
            tree = timed(spent, "parsing", HTMLTree.parse, html)
            tags = html.count("<")
            limit = math_html.depth_limit(tags)
            if tags >= limit:
                timed(spent, "nesting check", math_html._deeper_than, tree, limit)
            timed(spent, "math rewrite", math_html._rewrite_math, tree)
            text = timed(spent, "main-content text", extract_plain_text, tree, **math_html.TEXT_OPTIONS)
            timed(spent, "formula spans", formula_spans, text)

    def whole(spent: dict[str, float]) -> None:
        for body in bodies:
            timed(spent, "whole", extract_record, body, None, "text/html", 1)

    return len(bodies), mean_of(floor), mean_of(curate), mean_of(whole)["whole"]


def shared_costs(passes: int) -> tuple[float, float]:
    """Per page, the best of `passes`: CPython's encoding of the decoded text back to UTF-8 (`str.encode`,
    the work `HTMLTree.parse` asks of CPython for a text that is not ASCII), and one walk of the DOM by a
    selector query that matches nothing, the least any query costs (the math rewrite's one query is that
    walk and its matching)."""
    from resiliparse.parse.html import HTMLTree
    from support.warcs import real_pages

    from curate.extraction.decode import decode_html

    bodies = [page.html for page in real_pages(SHARED)]
    encoding = walking = float("inf")
    for _ in range(passes):
        encoded = walked = 0.0
        for body in bodies:
            text = decode_html(body, None)[0]
            start = time.process_time()
            text.encode("utf-8", "surrogatepass")
            encoded += time.process_time() - start
            tree = HTMLTree.parse(text)
            start = time.process_time()
            if tree.document is not None:
                tree.document.query_selector_all("#no-such-id")
            walked += time.process_time() - start
        encoding, walking = min(encoding, encoded), min(walking, walked)
    return 1000 * encoding / len(bodies), 1000 * walking / len(bodies)


def guard_cost(rounds: int) -> tuple[int, float, float]:
    """Per page, `extract_record` in this process and through the extraction guard, as the median of `rounds`.

    The two passes alternate, and each round swaps which goes first: on this machine the first of two
    back-to-back passes is often the slower, whatever it runs. The guarded pass counts this process and the
    guard's child (`tree_cpu_seconds`). Their difference is the guard's own cost, parent and child; table 3's
    last line also holds what the stage's other steps do to the child's caches.
    """
    from support.warcs import real_pages

    from curate.extraction.record import extract_record
    from curate.runners.guard import RecordGuard
    from curate.steps.read_warc import BATCH_ROWS

    bodies = [page.html for page in real_pages(SHARED)]
    guard = RecordGuard("curate.extraction.record:extract_record", kind="extract", timeout_s=60.0)

    def in_process() -> None:
        for body in bodies:
            extract_record(body, None, "text/html", 1)

    def guarded() -> None:
        # As ExtractStep sends them: a reader's batch of pages at once.
        for start in range(0, len(bodies), BATCH_ROWS):
            guard.call_many([(memoryview(body), None, "text/html", 1) for body in bodies[start : start + BATCH_ROWS]])

    passes = {"in-process": in_process, "guarded": guarded}
    spent: dict[str, list[float]] = {name: [] for name in passes}
    try:
        in_process()
        guarded()  # starts the child and warms it
        for round_number in range(rounds):
            names = list(passes) if round_number % 2 else list(reversed(passes))
            for name in names:
                start = tree_cpu_seconds()
                passes[name]()
                spent[name].append(1000 * (tree_cpu_seconds() - start) / len(bodies))
    finally:
        guard.close()
    median = {name: sorted(values)[len(values) // 2] for name, values in spent.items()}
    return len(bodies), median["in-process"], median["guarded"]


def start_up_cost(work: Path) -> float:
    """CPU seconds of one whole `curate ingest --local-runner` command on a WARC of one real page."""
    from support.warcs import real_pages, write_warc

    one = work / "one.warc.gz"
    write_warc(real_pages(SHARED)[:1], one, repeat=1)
    curate = str(Path(sys.executable).with_name("curate"))
    costs = []
    for attempt in range(3):  # the first also pays a cold file cache
        out = work / f"one-{attempt}"
        command = [curate, "ingest", "--input", str(one), "--out", str(out), "--local-runner"]
        costs.append(run_command("one-record command", command, 1, work / "one.log").cpu)
    return min(costs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=5000, help="HTML response records in the stage run")
    parser.add_argument("--files", type=int, default=2, help="WARC files to spread them over")
    parser.add_argument("--passes", type=int, default=3, help="passes over the pages for the phase table")
    parser.add_argument("--rounds", type=int, default=8, help="alternating rounds for the guard's cost")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="curate-bench-breakdown-"))
    try:
        paths = build_warcs(work, args.records, args.files)
        floor = run_floor(paths)
        records, main_cpu, child_cpu, steps = stage_breakdown(paths, work)
        per_record = 1000 / records
        print(f"1. the ingest stage, local runner, warm, {records} records in {len(paths)} files (CPU ms a record)")
        print(f"  {'main process':<52} {main_cpu * per_record:6.3f}")
        print(f"  {'extraction guard child':<52} {child_cpu * per_record:6.3f}")
        print(f"  {'whole':<52} {(main_cpu + child_cpu) * per_record:6.3f}")
        print(f"  {'resiliparse-only floor, same files':<52} {1000 * floor.cpu / floor.records:6.3f}")
        print(
            f"  {'floor / whole (target >= 0.7)':<52} {floor.cpu / floor.records / (main_cpu + child_cpu) * records:6.2f}"
        )
        print("\n2. the main process by step (CPU ms a record)")
        for name, cpu in steps:
            print(f"  {name:<52} {cpu * per_record:6.3f}")
        pages, floor_phases, curate_phases, whole = page_phases(args.passes)
        print(
            f"\n3. one page's extraction in this process, {pages} pages, mean of {args.passes} passes (CPU ms a page)"
        )
        print(f"  {'phase':<52} {'floor':>6} {'curate':>6}")
        for phase in dict.fromkeys([*floor_phases, *curate_phases]):
            cells = [
                f"{phases[phase]:6.3f}" if phase in phases else f"{'':6}" for phases in (floor_phases, curate_phases)
            ]
            print(f"  {phase:<52} {cells[0]} {cells[1]}")
        print(f"  {'sum':<52} {sum(floor_phases.values()):6.3f} {sum(curate_phases.values()):6.3f}")
        print(f"  {'extract_record, whole (what the guard child runs)':<52} {'':6} {whole:6.3f}")
        print(f"  {'guard child a record (1) minus extract_record':<52} {'':6} {child_cpu * per_record - whole:6.3f}")
        encoding, walking = shared_costs(args.passes)
        print(f"  inside the phases, best of {args.passes} passes:")
        print(f"  {'  parsing: the text encoded back to UTF-8 (CPython)':<52} {encoding:6.3f} {encoding:6.3f}")
        print(f"  {'  math rewrite: one DOM walk (a query matching nothing)':<52} {'':6} {walking:6.3f}")
        pages, in_process, guarded = guard_cost(args.rounds)
        print(f"\n4. the guard's own cost, {pages} pages, median of {args.rounds} alternating rounds (CPU ms a page)")
        print(f"  {'extract_record in this process':<52} {in_process:6.3f}")
        print(f"  {'through the guard (this process and its child)':<52} {guarded:6.3f}")
        print(f"  {'the guard':<52} {guarded - in_process:6.3f}")
        print(f"\n5. one whole `curate ingest --local-runner` command, one record: {start_up_cost(work):.2f} CPU s")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
