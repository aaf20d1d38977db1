"""Reading labelled text for the classifier: seed corpora (positives) and ingested documents (negatives).

Formats met in practice: JSONL (`text`, `content`, or StackMathQA's `Q`/`A`), JSON arrays/objects of
records, Parquet with a text column, and OpenStax CNXML, whose MathML is rewritten to LaTeX so a textbook
reads like the math web pages the classifier will score.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import gzip
import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from curate.errors import InputError
from curate.schema import DOCUMENTS

TEXT_FIELDS = ("text", "content")
_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".parquet", ".cnxml")


@dataclass(frozen=True)
class SeedDoc:
    text: str
    url: str | None
    source: str  # file it came from (path, or path:line)


def expand_paths(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    """Files under `paths` with a readable suffix; directories are walked in sorted order."""
    if isinstance(paths, str | Path):
        paths = [paths]
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(p for p in sorted(path.rglob("*")) if p.is_file() and _readable(p.relative_to(path)))
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(str(path), "no such file or directory")
    return files


def _readable(relative: Path) -> bool:
    # Like Spark and pyarrow, skip `_`/`.` entries: a stage's `_rejected/` rows are not its documents.
    if any(part.startswith(("_", ".")) for part in relative.parts):
        return False
    return relative.name.endswith(_SUFFIXES)


def read_seed(paths: str | Path | Sequence[str | Path], *, text_field: str | None = None) -> Iterator[SeedDoc]:
    """Every non-empty document in `paths`, in file order."""
    for path in expand_paths(paths):
        name = path.name
        if name.endswith(".parquet"):
            yield from _read_parquet(path, text_field)
        elif name.endswith(".cnxml"):
            text = _cached_cnxml_text(path.read_bytes())
            if text:
                yield SeedDoc(text, None, str(path))
        elif name.endswith((".json", ".json.gz")) and not _looks_like_jsonl(path):
            with _open_text(path) as handle:
                data = json.load(handle)
            records = data.values() if isinstance(data, dict) else data
            for index, record in enumerate(records):
                doc = _from_record(record, text_field, f"{path}#{index}")
                if doc is not None:
                    yield doc
        else:
            yield from _read_jsonl(path, text_field)


def _open_text(path: Path) -> IO[str]:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def _looks_like_jsonl(path: Path) -> bool:
    # C4 ships JSON Lines under a `.json.gz` name; a JSON document starts with `[` or a multi-line `{`.
    with _open_text(path) as handle:
        first = handle.readline().strip()
    if not first.startswith("{"):
        return False
    try:
        json.loads(first)
    except json.JSONDecodeError:
        return False
    return True


def _read_jsonl(path: Path, text_field: str | None) -> Iterator[SeedDoc]:
    with _open_text(path) as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}", f"not JSON ({exc.msg}); fix or remove the line") from exc
            doc = _from_record(record, text_field, f"{path}:{number}")
            if doc is not None:
                yield doc


def _from_record(record: Any, text_field: str | None, source: str) -> SeedDoc | None:
    if not isinstance(record, dict):
        raise InputError(source, "expected a JSON object per record")
    if text_field is not None:
        text = record.get(text_field)
    elif "Q" in record and "A" in record:
        # StackMathQA: the question alone is often a one-liner; the pair is what a Q&A page shows.
        text = f"{record['Q']}\n\n{record['A']}"
    else:
        text = next((record[f] for f in TEXT_FIELDS if isinstance(record.get(f), str)), None)
    if not isinstance(text, str) or not text.strip():
        return None
    return SeedDoc(text, _record_url(record), source)


def _record_url(record: dict[str, Any]) -> str | None:
    for holder in (record, record.get("meta"), record.get("metadata")):
        if isinstance(holder, dict):
            for key in ("url", "id"):
                value = holder.get(key)
                if isinstance(value, str) and value.startswith(("http://", "https://")):
                    return value
    return None


def _read_parquet(path: Path, text_field: str | None) -> Iterator[SeedDoc]:
    schema = pq.read_schema(path)
    field = text_field or next((f for f in TEXT_FIELDS if f in schema.names), None)
    if field is None or field not in schema.names:
        raise InputError(str(path), f"no text column (looked for {text_field or TEXT_FIELDS}); pass text_field")
    columns = [field] + (["url"] if "url" in schema.names else [])
    for batch in pq.ParquetFile(path).iter_batches(columns=columns, batch_size=2048):
        texts = batch.column(field).to_pylist()
        urls = batch.column("url").to_pylist() if "url" in batch.schema.names else [None] * len(texts)
        for text, url in zip(texts, urls, strict=True):
            if text and text.strip():
                yield SeedDoc(text, url, str(path))


def url_key(url: str | None) -> str | None:
    """A URL reduced so that seed and crawl spellings of one page compare equal (scheme, www., slash)."""
    if not url:
        return None
    key = url.strip().lower()
    for prefix in ("https://", "http://"):
        if key.startswith(prefix):
            key = key[len(prefix) :]
            break
    key = key.removeprefix("www.").split("#", 1)[0]
    return key.rstrip("/")


# --- CNXML (OpenStax) -------------------------------------------------------------------------------

_CNXML_SKIP = {"metadata", "media", "image", "label", "link-group"}
_CNXML_BLOCK = {"para", "title", "item", "equation", "row", "caption", "problem", "solution", "section", "note"}


def _local(tag: str | Any) -> str:
    # Comments and processing instructions have a function as tag.
    return tag[tag.rfind("}") + 1 :] if isinstance(tag, str) else ""


def _cached_cnxml_text(data: bytes) -> str:
    """`cnxml_to_text`, kept per machine by the module's content and the converters' code: rewriting a
    textbook's MathML costs seconds (~5 s for the shared OpenStax calculus book), and every iteration of the
    loop, and every run, trains on the same seed."""
    from curate.cache_dir import cache_root

    cached = cache_root() / f"cnxml-text-{_converter_version()}" / f"{xxhash.xxh3_128_hexdigest(data)}.txt"
    try:
        return cached.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        pass
    text = cnxml_to_text(data)
    staging = cached.with_name(f".{cached.name}.{os.getpid()}")
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        staging.write_bytes(text.encode("utf-8"))
        os.replace(staging, cached)  # whole or absent, whichever worker writes it
    except OSError:
        with contextlib.suppress(OSError):
            staging.unlink()  # our own partial write, if any
    return text


@functools.cache
def _converter_version() -> str:
    from curate.extraction import mathml
    from curate.fingerprints import code_version

    return xxhash.xxh3_64(f"{code_version(cnxml_to_text)}:{code_version(mathml)}".encode()).hexdigest()


def cnxml_to_text(data: bytes) -> str:
    """Plain text of a CNXML module: block elements become lines, MathML becomes `$...$` LaTeX."""
    root = ET.fromstring(data)
    out: list[str] = []
    _walk_cnxml(root, out)
    lines = (" ".join(line.split()) for line in "".join(out).split("\n"))
    return "\n".join(line for line in lines if line)


def _walk_cnxml(elem: ET.Element, out: list[str], display: bool = False) -> None:
    name = _local(elem.tag)
    if name in _CNXML_SKIP:
        return
    if name == "math":
        latex = _mathml_latex(elem)
        delimiter = "$$" if display else "$"
        out.append(f" {delimiter}{latex}{delimiter} " if latex else " ")
        return
    block = name in _CNXML_BLOCK
    if block:
        out.append("\n")
    if elem.text:
        out.append(elem.text)
    for child in elem:
        _walk_cnxml(child, out, display or name == "equation")
        if child.tail:
            out.append(child.tail)
    if block:
        out.append("\n")


def _mathml_latex(math: ET.Element) -> str:
    """LaTeX of a `<m:math>` element through the converter web pages go through, so a seed text and a crawled
    page spell the same formula the same way (`x^2`, never `{x}^{2}`)."""
    from curate.extraction.mathml import mathml_to_latex

    plain = copy.deepcopy(math)
    for node in plain.iter():
        # The converter parses markup as HTML: `{http://www.w3.org/1998/Math/MathML}mi` must become `mi`.
        node.tag = _local(node.tag)
        for key in [k for k in node.attrib if k.startswith("{")]:
            del node.attrib[key]
    return mathml_to_latex(ET.tostring(plain, encoding="unicode")).strip()


def document_id(doc: SeedDoc) -> str:
    """A corpus document's `doc_id`: a hash of URL and text, so the same page read twice is one document."""
    return xxhash.xxh128_hexdigest(f"{doc.url or ''}\x00{doc.text}")


def documents_table(docs: Iterable[SeedDoc]) -> pa.Table:
    """Texts as a DOCUMENTS table (unknown lineage columns null), e.g. to score a seed corpus itself."""
    rows: dict[str, SeedDoc] = {}
    for doc in docs:
        rows.setdefault(document_id(doc), doc)
    ids = list(rows)
    urls = [rows[i].url for i in ids]
    columns = {
        "doc_id": ids,
        "url": urls,
        "host": [urlsplit(u).hostname if u else None for u in urls],
        "text": [rows[i].text for i in ids],
        "n_chars": [len(rows[i].text) for i in ids],
    }
    arrays = [pa.array(columns[f.name], f.type) if f.name in columns else pa.nulls(len(ids), f.type) for f in DOCUMENTS]
    return pa.Table.from_arrays(arrays, schema=DOCUMENTS)
