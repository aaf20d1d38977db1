"""Training examples for the math classifier: seed texts (positives), sampled documents (negatives), the split.

Positives come from a seed corpus; negatives are drawn at random from the ingested documents, leaving out
any page whose URL is in the seed, so a seed page crawled again is never taught as non-math. Texts that
preprocess to the same line count once (DCLM's two annotation files share 281 documents), and every
random choice derives from (seed, example identity).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import xxhash

from curate.classify.model import MATH_LABEL, OTHER_LABEL
from curate.classify.preprocess import preprocess
from curate.classify.seed import document_id, expand_paths, read_seed, url_key
from curate.errors import ConfigError, InputError


@dataclass(frozen=True)
class Example:
    text: str  # preprocessed
    key: str  # stable identity: doc_id for documents, content hash for seed texts
    label: str
    source: str = ""  # the positives argument it came from: a whole source can be held out of training


def rank(seed: int, purpose: str, key: str) -> int:
    return xxhash.xxh64_intdigest(f"{seed}\x00{purpose}\x00{key}")


def load_positives(
    paths: str | Path | Sequence[str | Path], *, text_field: str | None, max_chars: int
) -> tuple[list[Example], set[str]]:
    """Preprocessed seed texts (exact duplicates once, under their first source) and the seed pages' URL keys.

    Each path given is one source (a directory of StackMathQA shards is one source, not 96).
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    examples: dict[str, Example] = {}
    urls: set[str] = set()
    for source in paths:
        for doc in read_seed(source, text_field=text_field):
            key = url_key(doc.url)
            if key:
                urls.add(key)
            text = preprocess(doc.text, max_chars)
            if text:
                digest = xxhash.xxh128_hexdigest(text)
                examples.setdefault(digest, Example(text, digest, MATH_LABEL, str(source)))
    return list(examples.values()), urls


def _documents(path: Path, *, with_text: bool) -> Iterator[tuple[str, str | None, str | None]]:
    """(doc_id, url, text or None) of every document in a DOCUMENTS Parquet file or a text corpus file.

    A text corpus (web text as JSONL, say) gets the ids `documents_table` would give it, so a document
    reads the same whichever form it arrives in.
    """
    if not path.name.endswith(".parquet"):
        for doc in read_seed(path):
            yield document_id(doc), doc.url, doc.text if with_text else None
        return
    names = pq.read_schema(path).names
    if "doc_id" not in names or "text" not in names:
        raise InputError(str(path), "negatives need DOCUMENTS columns doc_id and text")
    columns = ["doc_id"] + (["url"] if "url" in names else []) + (["text"] if with_text else [])
    for batch in pq.ParquetFile(path).iter_batches(columns=columns, batch_size=4096 if with_text else 65536):
        ids = batch.column("doc_id").to_pylist()
        urls = batch.column("url").to_pylist() if "url" in columns else [None] * len(ids)
        texts = batch.column("text").to_pylist() if with_text else [None] * len(ids)
        yield from zip(ids, urls, texts, strict=True)


def sample_negatives(
    paths: str | Path | Sequence[str | Path],
    n: int,
    *,
    seed: int,
    exclude_urls: set[str],
    exclude_texts: set[str],
    max_chars: int,
) -> tuple[list[Example], dict[str, int]]:
    """`n` documents drawn uniformly by smallest hash of (seed, doc_id) from DOCUMENTS Parquet (a stage's
    output) and any text corpora given beside it (web text, when a crawl is too small to be the only source).

    Two passes: ids and URLs first (cheap columns), texts only for the chosen ids, so a large ingest is
    never held in memory. The draw does not depend on file order or partitioning.
    """
    files = expand_paths(paths)
    if not files:
        raise ConfigError(f"negatives: no documents under {paths}; point it at an ingest stage's output")
    heap: list[tuple[int, str]] = []  # max-heap via negated rank: the n smallest ranks survive
    in_heap: set[str] = set()
    seen = excluded = 0
    for path in files:
        for doc_id, url, _ in _documents(path, with_text=False):
            seen += 1
            if url_key(url) in exclude_urls:
                excluded += 1
                continue
            if doc_id in in_heap:
                continue  # the same document in two files (DCLM's annotation files overlap)
            item = (-rank(seed, "negative", doc_id), doc_id)
            if len(heap) < n:
                heapq.heappush(heap, item)
                in_heap.add(doc_id)
            elif item > heap[0]:
                in_heap.discard(heapq.heapreplace(heap, item)[1])
                in_heap.add(doc_id)
    chosen = {doc_id for _, doc_id in heap}
    by_text: dict[str, Example] = {}
    duplicates_of_positives = duplicate_texts = 0
    for path in files:
        for doc_id, _, raw in _documents(path, with_text=True):
            if doc_id not in chosen:
                continue
            text = preprocess(raw, max_chars)
            if not text:
                continue
            digest = xxhash.xxh128_hexdigest(text)
            if digest in exclude_texts:
                duplicates_of_positives += 1
                continue
            # One text taught twice weighs double and, split across train and validation, flatters it.
            # The smallest doc_id keeps it, whatever the file order.
            kept = by_text.get(digest)
            if kept is not None:
                duplicate_texts += 1
                if kept.key <= doc_id:
                    continue
            by_text[digest] = Example(text, doc_id, OTHER_LABEL)
    stats = {
        "documents_seen": seen,
        "excluded_seed_urls": excluded,
        "excluded_seed_texts": duplicates_of_positives,
        "excluded_duplicate_texts": duplicate_texts,
    }
    return sorted(by_text.values(), key=lambda e: e.key), stats


def take(examples: list[Example], n: int, seed: int) -> list[Example]:
    return sorted(examples, key=lambda e: rank(seed, "take", e.key))[:n]


def split_examples(examples: list[Example], valid_fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Per-class hold-out: each class contributes the same fraction to validation."""
    train: list[Example] = []
    valid: list[Example] = []
    for label in (MATH_LABEL, OTHER_LABEL):
        group = sorted((e for e in examples if e.label == label), key=lambda e: rank(seed, "valid", e.key))
        n_valid = round(len(group) * valid_fraction)
        valid.extend(group[:n_valid])
        train.extend(group[n_valid:])
    # fastText's SGD reads the file in order: interleave the classes instead of one block after the other.
    train.sort(key=lambda e: rank(seed, "order", e.key))
    return train, valid


def write_fasttext_file(path: Path, examples: list[Example]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for example in examples:
            handle.write(f"{example.label} {example.text}\n")
