"""Soak, heavy form: every real HTML page of the shared data through the product's extraction
(`curate.steps.extract.extract_record`, in this one process), shuffled differently each pass, for 20+ passes.

Per pass it prints CPU seconds, pages per CPU-second (CPU time, so a busy shared machine skews it less than
wall time would), the process's RSS after the pass, and how many pages' outputs differ from pass 0. At the end:
the RSS trend from pass 2 on (least-squares MB per pass; pass 1 loads the parser and warms its caches). It exits
1 if any page raised, or any output changed between passes.

    .venv/bin/python benchmarks/soak.py [--passes 20] [--seed N] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # tests/support


def rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=20261205)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()

    from support.soak import real_html_inputs, soak_pass

    inputs = real_html_inputs(args.data)
    print(
        f"{len(inputs)} real pages ({sum(i.name.startswith('html/') for i in inputs)} from html/, the rest WARC "
        f"responses), {sum(len(i.payload) for i in inputs) / 2**20:.1f} MB, {args.passes} passes, "
        f"RSS before {rss_mb():.0f} MB"
    )
    print(f"{'pass':>4} {'cpu s':>7} {'wall s':>7} {'pages/cpu-s':>11} {'RSS MB':>7} {'changed':>7}  drops")
    first: dict[str, object] = {}
    rss: list[float] = []
    failed = False
    for pass_index in range(args.passes):
        cpu, wall = time.process_time(), time.perf_counter()
        outcomes = dict(soak_pass(inputs, args.seed, pass_index))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        rss.append(rss_mb())
        if pass_index == 0:
            first = outcomes
        changed = sum(outcomes[name] != first[name] for name in first)
        drops = Counter(outcome[3] for outcome in outcomes.values() if outcome[3] is not None)
        failed |= changed > 0 or "extract_error" in drops
        print(
            f"{pass_index + 1:>4} {cpu:>7.2f} {wall:>7.2f} {len(inputs) / cpu:>11.0f} {rss[-1]:>7.0f} "
            f"{changed:>7}  {dict(sorted(drops.items()))}"
        )
    if len(rss) >= 3:
        passes = list(range(2, len(rss) + 1))
        slope = statistics.linear_regression(passes, rss[1:]).slope
        print(
            f"RSS: {rss[0]:.0f} MB after pass 1, {rss[-1]:.0f} MB after pass {len(rss)}; "
            f"trend from pass 2: {slope:+.2f} MB/pass"
        )
    print(
        "FAILED: an extraction error or an output that changed between passes"
        if failed
        else f"OK: {len(inputs) * args.passes} extractions, no error, every output identical to pass 1"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
