"""Real pages without benchmark content, for measuring false positives (tests, benchmarks/decontam.py).

Reads the shared data layout (see its README): the web-text JSONL documents and the text of the
non-math HTML pages (resiliparse plain-text extraction). Math pages are left out on purpose: they are
where benchmark problems legitimately appear, so a hit there is not a false positive by definition.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

WEB_TEXT_FILES = (
    "web-text/dclm-annotated/agreement_data.jsonl",
    "web-text/dclm-annotated/majority_data.jsonl",
    "web-text/dolma-cc_en_head/cc_en_head-0091.jsonl.gz",
    "web-text/dolma-cc_en_head/cc_en_head-0174.jsonl.gz",
    "web-text/olmo-c4-sample/c4-sample.01.json.gz",
    "web-text/olmo-c4-sample/c4-sample.02.json.gz",
    "web-text/olmo-c4-sample/c4-sample.03.json.gz",
    "web-text/olmo-c4-sample/c4_100_domains_5_www.theguardian.com_00000000.jsonl.gz",
)
HTML_GLOBS = (
    "html/article-extraction-benchmark/html/*.html.gz",
    "html/trafilatura-tests/cache/*.html",
    "html/trafilatura-tests/eval/*.html",
    "html/llm-webkit-bench/data/origin/*.html",
)


@dataclass(frozen=True)
class Page:
    source: str  # path relative to the data root, plus :line for JSONL documents
    text: str


def _open_text(path: Path) -> str:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return raw.decode("utf-8", errors="replace")


def web_text_pages(root: str | Path) -> Iterator[Page]:
    root = Path(root)
    for relative in WEB_TEXT_FILES:
        for number, line in enumerate(_open_text(root / relative).splitlines(), start=1):
            if line.strip():
                yield Page(f"{relative}:{number}", json.loads(line)["text"])


def html_pages(root: str | Path) -> Iterator[Page]:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    root = Path(root)
    for pattern in HTML_GLOBS:
        for path in sorted(root.glob(pattern)):
            if path.name.startswith("math_"):
                continue
            text = extract_plain_text(HTMLTree.parse(_open_text(path)), main_content=False)
            if text.strip():
                yield Page(str(path.relative_to(root)), text)


def clean_pages(root: str | Path) -> list[Page]:
    return [*web_text_pages(root), *html_pages(root)]
