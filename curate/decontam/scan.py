"""Scanning documents against the index: which benchmark items they contain, and where.

A hit is one maximal run of overlapping matched windows of the same benchmark text in one document:
a page that reproduces a whole MATH solution gives one hit spanning it, not 200 overlapping 10-grams.
Offsets are character offsets in the original document text, so `text[offset : offset + length]` is the
matched passage and `ngram` is the text of its first matching window.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from curate.decontam.index import Matches, NGramIndex
from curate.decontam.normalize import OffsetMap, Tokens, tokenize

# Characters of text tokenised in one numpy pass: bounds the temporaries (~40 bytes per character).
CHUNK_CHARS = 2_000_000


@dataclass(frozen=True)
class Hit:
    benchmark: str
    item_id: str
    field: str
    offset: int
    length: int
    ngram: str
    matched_tokens: int


def _chunks(texts: Sequence[str], chunk_chars: int) -> Iterator[tuple[int, int]]:
    start, size = 0, 0
    for i, text in enumerate(texts):
        size += len(text)
        if size >= chunk_chars:
            yield start, i + 1
            start, size = i + 1, 0
    if start < len(texts):
        yield start, len(texts)


def scan(texts: Sequence[str | None], index: NGramIndex, chunk_chars: int = CHUNK_CHARS) -> list[list[Hit]]:
    """The hits of every text (empty list: clean). None counts as an empty text."""
    clean = [t or "" for t in texts]
    hits: list[list[Hit]] = [[] for _ in clean]
    for lo, hi in _chunks(clean, chunk_chars):
        tokens = tokenize(clean[lo:hi])
        matches = index.match(tokens)
        if len(matches.start):
            for doc, doc_hits in _hits(clean[lo:hi], tokens, matches, index).items():
                hits[lo + doc] = doc_hits
    return hits


def _hits(texts: Sequence[str], tokens: Tokens, matches: Matches, index: NGramIndex) -> dict[int, list[Hit]]:
    docs = tokens.doc[matches.start]
    order = np.lexsort((matches.start, matches.ref, docs))
    docs, refs = docs[order], matches.ref[order]
    first = matches.start[order]
    last = matches.end[order]  # exclusive token index
    out: dict[int, list[Hit]] = {}
    offset_maps: dict[int, OffsetMap] = {}
    i, total = 0, len(order)
    while i < total:
        doc, ref, span_start, span_end, window_end = (
            int(docs[i]),
            int(refs[i]),
            int(first[i]),
            int(last[i]),
            int(last[i]),
        )
        j = i + 1
        while j < total and docs[j] == doc and refs[j] == ref and first[j] <= span_end:
            span_end = max(span_end, int(last[j]))
            j += 1
        mapper = offset_maps.get(doc)
        if mapper is None:
            mapper = offset_maps[doc] = OffsetMap(texts[doc])
        start_char = mapper.start(int(tokens.start[span_start]))
        end_char = mapper.end(int(tokens.end[span_end - 1]))
        window_end_char = mapper.end(int(tokens.end[window_end - 1]))
        out.setdefault(doc, []).append(
            Hit(
                benchmark=index.benchmarks[int(index.ref_benchmark[ref])],
                item_id=index.ref_item[ref],
                field=index.fields[int(index.ref_field[ref])],
                offset=start_char,
                length=end_char - start_char,
                ngram=texts[doc][start_char:window_end_char],
                matched_tokens=span_end - span_start,
            )
        )
        i = j
    for doc_hits in out.values():
        doc_hits.sort(key=lambda h: (h.offset, h.benchmark, h.item_id, h.field))
    return out


def cut(text: str, hits: Sequence[Hit]) -> str:
    """`text` without the passages of `hits` (overlapping passages are merged)."""
    spans = sorted((h.offset, h.offset + h.length) for h in hits)
    pieces: list[str] = []
    cursor = 0
    for start, end in spans:
        if start > cursor:
            pieces.append(text[cursor:start])
        cursor = max(cursor, end)
    pieces.append(text[cursor:])
    return "".join(pieces)
