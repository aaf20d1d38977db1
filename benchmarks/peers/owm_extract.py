"""openwebmath-text-extract over HTML pages, run in its own environment (.venv-peers, built by `make bench`).

It needs resiliparse 1.1.0, which cannot share an environment with curate (resiliparse >= 2.0.1), so the
benchmarks call this file through `.venv-peers/bin/python` and it imports nothing from curate.

Input: JSONL, one {"html": "<decoded page>"} per line. Output: JSONL, one line per input page in input order,
{"text": str, "seconds": float, "error": str | null}.

`seconds` is the fastest of `--repeat` calls for that page, timed inside this process around OWM's
`extract_text` alone (its HTML parse included; reading the input and writing the output excluded). Rounds go
over all pages in turn, like `benchmarks/extraction.py`'s in-process extractors. `text` is the first round's.
A page OWM raises on is kept with its time, empty text and the exception's class name in `error`.

    .venv-peers/bin/python benchmarks/peers/owm_extract.py --input pages.jsonl --output out.jsonl [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, help='JSONL of {"html": ...}')
    parser.add_argument("--output", required=True, help='JSONL of {"text", "seconds", "error"}')
    parser.add_argument("--repeat", type=int, default=1, help="timed calls per page; the fastest counts")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    import numpy as np
    from text_extract.extract import extract_text
    from text_extract.utils import Config

    with open(args.input, encoding="utf-8") as handle:
        htmls = [json.loads(line)["html"] for line in handle if line.strip()]
    config_source = Config()
    warnings.simplefilter("ignore")  # OWM warns per page about markup it skips
    best = [float("inf")] * len(htmls)
    texts = [""] * len(htmls)
    errors: list[str | None] = [None] * len(htmls)
    for round_ in range(args.repeat):
        for index, html in enumerate(htmls):
            # OWM samples a randomized config per document; seed per call so every run and order is the same.
            np.random.seed(0)
            config = config_source.sample()
            start = time.perf_counter()
            try:
                result = extract_text(html, config, fast=False)
                error = None
            except Exception as exc:  # a peer's crash on one page is reported for that page, not fatal
                result, error = None, type(exc).__name__
            elapsed = time.perf_counter() - start
            best[index] = min(best[index], elapsed)
            if not round_:
                texts[index] = result[0] if result else ""
                errors[index] = error
    with open(args.output, "w", encoding="utf-8") as handle:
        for text, seconds, error in zip(texts, best, errors, strict=True):
            handle.write(json.dumps({"text": text, "seconds": seconds, "error": error}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
