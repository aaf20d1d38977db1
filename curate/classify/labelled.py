"""Labelled pages for evaluating the classifier: WARC files, HTML files or text/documents files, as a user has them.

Pages go through the same decoding and main-text extraction as ingest (`curate.extraction.decode`,
`curate.extraction.math_html`), so an evaluation scores exactly the text a crawl would give the model. A page
that yields no text is counted under a named reason, never silently skipped.
"""

from __future__ import annotations

import glob
import gzip
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from curate.classify.seed import expand_paths, read_seed
from curate.errors import InputError

_WARC_SUFFIXES = (".warc", ".warc.gz", ".arc", ".arc.gz")
_HTML_SUFFIXES = (".html", ".htm", ".html.gz", ".htm.gz")


@dataclass(frozen=True)
class LabelledText:
    text: str
    url: str | None
    source: str  # the file it came from


@dataclass
class LabelledSet:
    texts: list[LabelledText] = field(default_factory=list)
    drops: Counter[str] = field(default_factory=Counter)  # reason -> pages that gave no text


def _page_files(paths: Sequence[str | Path]) -> tuple[list[Path], list[Path]]:
    """(WARC and HTML files, other files) under `paths`; directories walked in sorted order."""
    pages: list[Path] = []
    rest: list[str | Path] = []
    expanded: list[str | Path] = []
    for raw in paths:
        # Quoted globs (`'origin/math_*.html'`) are expanded here, as `curate run --input` does for WARCs.
        matches = sorted(glob.glob(str(raw))) if glob.has_magic(str(raw)) else []
        if glob.has_magic(str(raw)) and not matches:
            raise InputError(str(raw), "the pattern matches no file")
        expanded.extend(matches or [raw])
    for raw in expanded:
        path = Path(raw)
        if path.is_dir():
            found = [
                p for p in sorted(path.rglob("*")) if p.is_file() and p.name.endswith(_WARC_SUFFIXES + _HTML_SUFFIXES)
            ]
            pages.extend(found)
            if not found:
                rest.append(path)
        elif path.is_file() and path.name.endswith(_WARC_SUFFIXES + _HTML_SUFFIXES):
            pages.append(path)
        elif path.exists():
            rest.append(path)
        else:
            raise InputError(str(path), "no such file or directory")
    return pages, expand_paths(rest) if rest else []


def _html_text(payload: bytes, charset: str | None) -> tuple[str | None, str | None]:
    """(main text, None) or (None, drop reason)."""
    from curate.extraction.decode import DecodeFailed, NotHtml, decode_html, sniff_html
    from curate.extraction.math_html import extract_main_text

    try:
        sniff_html(payload, declared_html=True)
        html, _ = decode_html(payload, charset)
    except NotHtml:
        return None, "non_html"
    except DecodeFailed:
        return None, "decode_error"
    text = extract_main_text(html).text
    return (text, None) if text.strip() else (None, "empty_text")


def _warc_pages(path: Path, drops: Counter[str]) -> Iterator[LabelledText]:
    from curate.io.warc import HTML_TYPES, WarcFileReader

    for row in WarcFileReader(str(path)).rows():
        if row.drop_reason == "not_response" or row.warc_record_type != "response":
            continue  # requests, metadata, warcinfo: not pages
        if row.drop_reason is not None:
            drops[row.drop_reason] += 1
            continue
        if row.http_status != 200:
            drops["http_status"] += 1
            continue
        if not (row.content_type or "").startswith(HTML_TYPES):
            drops["non_html"] += 1
            continue
        text, reason = _html_text(row.payload or b"", row.http_charset)
        if text is None:
            drops[reason or "empty_text"] += 1
            continue
        yield LabelledText(text, row.url, str(path))


def read_labelled(paths: Sequence[str | Path]) -> LabelledSet:
    """Texts of every page or document under `paths`: WARC responses, HTML files, and seed/document files."""
    result = LabelledSet()
    pages, documents = _page_files(paths)
    for path in pages:
        if path.name.endswith(_WARC_SUFFIXES):
            result.texts.extend(_warc_pages(path, result.drops))
            continue
        payload = path.read_bytes()
        if path.name.endswith(".gz"):
            payload = gzip.decompress(payload)
        text, reason = _html_text(payload, None)
        if text is None:
            result.drops[reason or "empty_text"] += 1
        else:
            result.texts.append(LabelledText(text, None, str(path)))
    if documents:
        result.texts.extend(LabelledText(doc.text, doc.url, doc.source) for doc in read_seed(documents))
    return result
