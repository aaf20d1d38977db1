"""Math-preserving extraction side by side with its peers, on real pages.

Three measurements for four extractors (ours, resiliparse main_content alone, trafilatura as datatrove calls
it, openwebmath-text-extract):
- math: formula recall on the 23 llm-webkit-bench math pages (`support.formula_recall`),
  micro-averaged over their 1,026 ground-truth formulas, with docs/s and MB/s of HTML on those pages;
- articles: main-text token F1 on the 181 article-extraction-benchmark pages against their `articleBody`;
- pages: docs/s over all 813 real HTML pages of the shared data (`support.warcs.real_pages`), then the
  ten slowest pages for ours beside resiliparse alone on each (the difference is the math rewrite), by
  default for ours and resiliparse only (the slow peers take minutes there; name them to include them).

Throughput is single-threaded wall time per extractor call (parse included, file reading excluded): for each
page the fastest of `--repeat` calls, extractors interleaved page by page (see `run_all`). The VM is shared
and noisy: pin a core (`taskset -c 1`) and compare ratios within one run, not absolutes across runs.

openwebmath-text-extract needs resiliparse 1.1.0, so it runs in its own environment (`.venv-peers`, built by
`make bench`) as `benchmarks/peers/owm_extract.py`, after the in-process extractors: the same per-page
fastest-of-`--repeat`, timed inside that process around its `extract_text` call (parse included, JSONL I/O
and interpreter start excluded). It is not interleaved with the others, so load bursts are not shared evenly
with it. Without `.venv-peers` it is skipped with a one-line note.

    python benchmarks/extraction.py [--data DIR] [--repeat N] [--only math|articles|pages] [--extractors a,b]
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import statistics
import time
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _paths import ROOT
from peers import owm_client
from support.formula_recall import formula_recall, load_math_pages

from curate.extraction.math_html import extract_main_text

Extractor = Callable[[str], str]
_WORD = re.compile(r"\w+")


def _ours(html: str) -> str:
    return extract_main_text(html).text


def _resiliparse(html: str) -> str:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    return extract_plain_text(HTMLTree.parse(html), main_content=True)


def _trafilatura(html: str) -> str:
    import trafilatura

    # datatrove's Trafilatura step: favour_precision=True, include_comments=False, deduplicate=True.
    return trafilatura.extract(html, favor_precision=True, include_comments=False, deduplicate=True) or ""


# Peers that run in their own environment: all pages in one child process, per-page fastest of `repeat`.
PEERS = ("openwebmath",)


def build_extractors(names: list[str]) -> dict[str, Extractor]:
    """The in-process extractors among `names`; peers (PEERS) are run by `run_all` in their own environment."""
    factories: dict[str, Extractor] = {"ours": _ours, "resiliparse": _resiliparse, "trafilatura": _trafilatura}
    unknown = [name for name in names if name not in factories and name not in PEERS]
    if unknown:
        raise SystemExit(f"unknown extractor(s) {unknown}; choose from {sorted([*factories, *PEERS])}")
    return {name: factories[name] for name in names if name in factories}


def available_peers(names: list[str]) -> list[str]:
    chosen = [name for name in names if name in PEERS]
    if "openwebmath" in chosen and (reason := owm_client.owm_missing()):
        print(reason)
        chosen.remove("openwebmath")
    return chosen


def run_all(
    extractors: dict[str, Extractor],
    htmls: list[str],
    repeat: int,
    peers: tuple[str, ...] | list[str] = (),
    per_page: dict[str, list[float]] | None = None,
) -> dict[str, tuple[list[str], float]]:
    """Per extractor: its outputs and docs/s.

    docs/s is the page count over the sum, across pages, of the fastest of `repeat` calls. Extractors are
    interleaved page by page, so a burst of load from other processes on this shared machine hits all of
    them alike, and the minimum filters out the rest (as `timeit` advises). Peers run afterwards, each in its
    own process, timed per page inside it the same way. `per_page`, when given, receives each in-process
    extractor's fastest seconds per page.
    """
    best = {name: [float("inf")] * len(htmls) for name in extractors}
    outputs: dict[str, list[str]] = {name: [""] * len(htmls) for name in extractors}
    for round_ in range(repeat):
        for index, html in enumerate(htmls):
            for name, extractor in extractors.items():
                start = time.perf_counter()
                text = extractor(html)
                elapsed = time.perf_counter() - start
                if not round_:
                    # Score the first output: trafilatura's `deduplicate` remembers text across calls, so
                    # later rounds over the same pages come out shorter.
                    outputs[name][index] = text
                best[name][index] = min(best[name][index], elapsed)
    results = {name: (outputs[name], len(htmls) / sum(best[name])) for name in extractors}
    if per_page is not None:
        per_page.update(best)
    if "openwebmath" in peers:
        owm = owm_client.run_owm(htmls, repeat)
        failed = Counter(error for error in owm.errors if error)
        if failed:
            print(f"openwebmath raised on {sum(failed.values())} of {len(htmls)} pages (scored empty): {dict(failed)}")
        results["openwebmath"] = (owm.texts, len(htmls) / sum(owm.seconds))
    return results


def token_f1(predicted: str, truth: str) -> tuple[float, float, float]:
    """Bag-of-words precision, recall and F1 over lower-cased `\\w+` tokens."""
    pred = Counter(_WORD.findall(predicted.lower()))
    gold = Counter(_WORD.findall(truth.lower()))
    overlap = sum((pred & gold).values())
    if not overlap:
        return 0.0, 0.0, 0.0
    precision = overlap / sum(pred.values())
    recall = overlap / sum(gold.values())
    return precision, recall, 2 * precision * recall / (precision + recall)


def load_articles(data: Path) -> tuple[list[str], list[str]]:
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    root = data / "html" / "article-extraction-benchmark"
    truth = json.loads((root / "ground-truth.json").read_text(encoding="utf-8"))
    htmls, bodies = [], []
    for key in sorted(truth):
        raw = gzip.decompress((root / "html" / f"{key}.html.gz").read_bytes())
        htmls.append(bytes_to_str(raw, detect_encoding(raw)))
        bodies.append(truth[key]["articleBody"])
    return htmls, bodies


def bench_math(extractors: dict[str, Extractor], data: Path, repeat: int, peers: list[str]) -> None:
    pages = load_math_pages(data)
    htmls = [page.html for page in pages]
    megabytes = sum(len(html.encode("utf-8")) for html in htmls) / 1e6
    total_formulas = sum(len(page.formulas) for page in pages)
    print(f"\nFormula recall: {len(pages)} llm-webkit-bench math pages, {total_formulas} formulas, {megabytes:.1f} MB")
    print(f"{'extractor':<13} {'found':>6} {'recall':>7} {'docs/s':>8} {'MB/s':>6} {'speed vs ours':>14}")
    rows = []
    for name, (outputs, rate) in run_all(extractors, htmls, repeat, peers).items():
        found = sum(formula_recall(text, page.formulas)[0] for text, page in zip(outputs, pages, strict=True))
        rows.append((name, found, rate))
    base = dict((name, rate) for name, _, rate in rows).get("ours")
    for name, found, rate in rows:
        ratio = f"{rate / base:.2f}x" if base else "-"
        recall = found / total_formulas
        print(f"{name:<13} {found:>6} {recall:>7.3f} {rate:>8.1f} {rate * megabytes / len(htmls):>6.2f} {ratio:>14}")


def bench_articles(extractors: dict[str, Extractor], data: Path, repeat: int, peers: list[str]) -> None:
    htmls, bodies = load_articles(data)
    megabytes = sum(len(html.encode("utf-8")) for html in htmls) / 1e6
    print(f"\nMain-text token F1: {len(htmls)} article-extraction-benchmark pages, {megabytes:.1f} MB")
    print(f"{'extractor':<13} {'P':>6} {'R':>6} {'F1':>6} {'docs/s':>8} {'MB/s':>6} {'speed vs ours':>14}")
    rows = []
    for name, (outputs, rate) in run_all(extractors, htmls, repeat, peers).items():
        scores = [token_f1(text, body) for text, body in zip(outputs, bodies, strict=True)]
        means = [statistics.fmean(column) for column in zip(*scores, strict=True)]
        rows.append((name, means, rate))
    base = dict((name, rate) for name, _, rate in rows).get("ours")
    for name, (precision, recall, f1), rate in rows:
        ratio = f"{rate / base:.2f}x" if base else "-"
        print(f"{name:<13} {precision:>6.3f} {recall:>6.3f} {f1:>6.3f} {rate:>8.1f} "
              f"{rate * megabytes / len(htmls):>6.2f} {ratio:>14}")  # fmt: skip


def bench_pages(extractors: dict[str, Extractor], data: Path, repeat: int, peers: list[str]) -> None:
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding
    from support.warcs import real_pages

    pages = real_pages(data)
    htmls = [bytes_to_str(page.html, detect_encoding(page.html)) for page in pages]
    megabytes = sum(len(html.encode("utf-8")) for html in htmls) / 1e6
    print(f"\nThroughput: all {len(htmls)} real HTML pages of the shared data, {megabytes:.1f} MB")
    print(f"{'extractor':<13} {'docs/s':>8} {'MB/s':>6} {'speed vs ours':>14}")
    per_page: dict[str, list[float]] = {}
    results = run_all(extractors, htmls, repeat, peers, per_page)
    base = results["ours"][1] if "ours" in results else None
    for name, (_, rate) in results.items():
        ratio = f"{rate / base:.2f}x" if base else "-"
        print(f"{name:<13} {rate:>8.1f} {rate * megabytes / len(htmls):>6.2f} {ratio:>14}")
    if "ours" in per_page:
        print_slowest(per_page, pages, htmls)


def print_slowest(per_page: dict[str, list[float]], pages: list[Any], htmls: list[str], count: int = 10) -> None:
    """The pages that cost us most, beside resiliparse alone on the same page: the difference is our math
    rewrite (formulas found and converted), the rest is resiliparse's own parse and main-content pass."""
    ours = per_page["ours"]
    floor = per_page.get("resiliparse")
    slowest = sorted(range(len(ours)), key=lambda index: -ours[index])[:count]
    share = sum(ours[index] for index in slowest) / sum(ours)
    print(f"\nSlowest {count} pages for ours ({share:.0%} of its time over {len(ours)} pages)")
    print(f"{'ours ms':>8} {'resiliparse ms':>15} {'KB':>6} {'formulas':>8}  page")
    for index in slowest:
        alone = f"{1000 * floor[index]:>15.1f}" if floor else f"{'-':>15}"
        formulas = extract_main_text(htmls[index]).n_formulas
        name = pages[index].source.as_posix().split("/html/", 1)[-1]
        print(f"{1000 * ours[index]:>8.1f} {alone} {len(htmls[index]) / 1024:>6.0f} {formulas:>8}  {name}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="shared data directory")
    parser.add_argument("--repeat", type=int, default=2, help="timed calls per page and extractor; the fastest counts")
    parser.add_argument("--only", choices=["math", "articles", "pages"], help="run one of the measurements")
    parser.add_argument(
        "--extractors",
        help="comma-separated subset of: ours, resiliparse, trafilatura, openwebmath "
        "(default: all four; ours,resiliparse for the pages measurement)",
    )
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in (args.extractors or "").split(",") if name.strip()]
    names = chosen or ["ours", "resiliparse", "trafilatura", "openwebmath"]
    extractors = build_extractors(names)
    peers = available_peers(names)
    warnings.simplefilter("ignore")  # trafilatura warns per page about markup it skips
    if args.only in (None, "math"):
        bench_math(extractors, args.data, args.repeat, peers)
    if args.only in (None, "articles"):
        bench_articles(extractors, args.data, args.repeat, peers)
    if args.only in (None, "pages"):
        if chosen:
            bench_pages(extractors, args.data, args.repeat, peers)
        else:
            bench_pages(build_extractors(["ours", "resiliparse"]), args.data, args.repeat, [])


if __name__ == "__main__":
    main()
