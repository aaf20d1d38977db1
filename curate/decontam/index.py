"""The benchmark n-gram index: hashed token n-grams in a sorted array, one file shipped to every worker.

The rule (DeepSeekMath, section 2.1): a document is contaminated if it contains any n-gram (n = 10 by
default) of a benchmark text; a benchmark text shorter than n but with at least `min_tokens` tokens is
matched as a whole, i.e. it must appear as a contiguous token sequence of the document.

What "n-gram" means here: the shortest run of tokens starting at a token that weighs at least n words,
where a word or CJK character weighs one and a number, lone letter or LaTeX command half (normalize.py).
Counting raw tokens instead, 10-grams of pure notation (`\\frac{1}{2} & \\frac{1}{2} \\\\ ...`, a
rotation matrix, `\\begin{pmatrix} 1 & 0`) matched 73 of 1,149 shared math pages (6.4 %: StackMathQA,
OpenStax, the math HTML pages) that hold no benchmark item; with weights, 10. The weights depend only on
the tokens, so a benchmark text and a page that share tokens share windows: matching stays exact.

Layout (all numpy, no Python object per entry):

- `hashes`: uint64, sorted: the polynomial hash (base `_Q`) of a window's token values.
- `refs`: int32, parallel to `hashes`: which (benchmark, item, role) the window belongs to. A window shared
  by several texts has one entry per text, so a hit names every item it comes from.
- `bitmap`: 2^m bits (about 1 in 32 set) over the top bits of every hash, built at load. A page window
  is binary-searched only if its bit is set, so ~97 % of windows cost one gather.
- `short_first` / `short_masks`: first token values of the whole-text entries and, for each, a bit mask of
  their token counts, so a page is probed for a short text of k tokens only where a token starts one.
- ref tables: benchmark, item id and role of each ref.

Guards (`IndexConfig`). Measured with `python benchmarks/decontam.py --guard` on 1,623 clean pages
(web-text documents and non-math HTML pages) and 1,120 math pages (StackMathQA, OpenStax) that hold no
benchmark item, index of all 13 shared sets:

    max_items  min_informative    entries  flagged clean  flagged math
    None       0                1,889,312              0             9
    None       1                1,846,799              0             9
    4          1                1,837,566              0             8   <- default
    2          1                1,828,861              0             8
    8          1                1,843,039              0             9

- `min_informative` = 1: a window needs a word of two or more letters (or a CJK character). With
  token-count windows, windows of numbers and lone letters (`0 1 2 3 4 5 6 7 8 9`, `A 2. B 3. C 4. D 5.`,
  dates, page numbers) flagged 7 clean pages (0.43 %); weighted windows already stop those, so here it
  is a cheap second line that prunes 42,513 windows nobody can attribute.
- `max_items` = 4: a window found in more than 4 distinct benchmark texts is boilerplate ("Which of the
  following statements is true?", OCW's shared "Preamble: ...") and cannot say which item leaked. Not 1,
  because one question legitimately lives in up to four texts (MATH test, MATH-500, miniF2F's informal
  statement, DeepSeek's copy of GSM8K); identical texts count once.
- Neither guard may leave a benchmark text without any entry: such a text keeps all its windows (or its
  whole-text entry), so every text of `min_tokens` tokens or more stays detectable (recall first).

What still matches math pages is the rule itself: ten-word textbook phrases that a benchmark happens to
share ("the area of the region bounded by the graph of", MATH 383 and 4695). A stop-gram list from a
large reference corpus would remove those; none is shipped, because a reference crawl can hold real
leaks and would whitelist them.
"""

from __future__ import annotations

import dataclasses
import json
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

from curate.decontam.loaders import BenchmarkText
from curate.decontam.normalize import NORMALIZATION_VERSION, WORD_WEIGHT, Tokens, polynomial_hashes, tokenize
from curate.errors import CurateError

INDEX_FORMAT = "curate-ngram-index-v2"
_Q = 0xD6E8FEB86659FD93  # odd (invertible mod 2^64) and unrelated to normalize's character base
_U64 = np.uint64
_BUILD_CHUNK_TEXTS = 4000


@dataclass(frozen=True)
class IndexConfig:
    n: int = 10
    min_tokens: int = 3
    max_items: int | None = 4  # None: no boilerplate guard
    min_informative: int = 1  # words of 2+ letters (or CJK characters) a window needs

    def __post_init__(self) -> None:
        if self.n < 2:
            raise ValueError(f"n must be >= 2, got {self.n}")
        if not self.min_tokens >= 1:
            raise ValueError(f"min_tokens must be >= 1, got {self.min_tokens}")
        if not 0 <= self.min_informative <= self.n:
            raise ValueError(f"min_informative must be in [0, n], got {self.min_informative}")
        if self.max_items is not None and self.max_items < 1:
            raise ValueError(f"max_items must be >= 1 or None, got {self.max_items}")


def windows(tokens: Tokens, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Every n-gram window of a token batch: start and exclusive end token index, inside one document.

    A window starts at every token that has weight and ends as soon as it weighs n words.
    """
    weight = np.zeros(len(tokens) + 1, dtype=np.int64)
    np.cumsum(tokens.weight, out=weight[1:])
    # reached[w] = the first prefix length whose weight is >= w. Weights are tiny integers, so this table
    # is as long as the batch and replaces a binary search per window.
    reached = np.zeros(int(weight[-1]) + 1, dtype=np.int64)
    reached[1:] = np.repeat(np.arange(1, len(weight), dtype=np.int64), np.diff(weight))
    starts = np.flatnonzero(tokens.weight)
    targets = weight[starts] + n * WORD_WEIGHT
    inside = targets < len(reached)
    starts = starts[inside]
    ends = reached[targets[inside]]
    same_doc = tokens.doc[starts] == tokens.doc[ends - 1]
    return starts[same_doc], ends[same_doc]


class RangeHasher:
    """Hashes of token ranges of one batch; the prefix sum is computed once for all the lookups."""

    def __init__(self, tokens: Tokens) -> None:
        self._hash = polynomial_hashes(tokens.values, base=_Q)

    def __call__(self, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        return self._hash(starts, ends)


def _count_between(flags: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    running = np.zeros(len(flags) + 1, dtype=np.int64)
    np.cumsum(flags, out=running[1:])
    return running[ends] - running[starts]


def _unique_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (a, b) pairs sorted by a then b.

    Sorts by `a` alone and orders `b` only inside runs of equal `a` (rare: most windows are unique), which
    is several times faster than np.lexsort or np.unique(axis=0) on millions of rows.
    """
    order = np.argsort(a)
    a, b = a[order], b[order]
    same = a[1:] == a[:-1]
    if same.any():
        in_run = np.zeros(len(a), dtype=bool)
        in_run[1:] |= same
        in_run[:-1] |= same
        rows = np.flatnonzero(in_run)
        b[rows] = b[rows][np.lexsort((b[rows], a[rows]))]
    keep = np.ones(len(a), dtype=bool)
    keep[1:] = ~same | (b[1:] != b[:-1])
    return a[keep], b[keep]


def _member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Boolean mask of `values` found in `sorted_set`.

    A small table over the top bits rejects almost every value with one cache-resident gather; only the
    rest are binary-searched (np.isin would re-sort both sides on every call).
    """
    found = np.zeros(len(values), dtype=bool)
    if not len(sorted_set) or not len(values):
        return found
    bits = int(min(24, max(10, np.ceil(np.log2(len(sorted_set))) + 6)))
    shift = _U64(64 - bits)
    table = np.zeros(1 << bits, dtype=bool)
    table[sorted_set >> shift] = True
    maybe = np.flatnonzero(table[values >> shift])
    where = np.searchsorted(sorted_set, values[maybe])
    where[where == len(sorted_set)] = 0
    found[maybe] = sorted_set[where] == values[maybe]
    return found


MAX_SHORT_TOKENS = 63  # token counts of short texts are bits of a uint64 mask


def _short_shapes(lengths: np.ndarray, firsts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct first token values of short texts, each with the bit mask of the token counts it starts."""
    firsts, lengths = _unique_pairs(firsts, lengths)
    unique, index = np.unique(firsts, return_inverse=True)
    masks = np.zeros(len(unique), dtype=_U64)
    np.bitwise_or.at(masks, index, np.left_shift(_U64(1), lengths.astype(_U64)))
    return unique, masks


def _short_ranges(tokens: Tokens, firsts: np.ndarray, masks: np.ndarray) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    """Token ranges that could equal a short text: k tokens from a token that starts a short text of k tokens."""
    candidates = np.flatnonzero(_member(tokens.values, firsts))
    if not len(candidates):
        return
    candidate_masks = masks[np.searchsorted(firsts, tokens.values[candidates])]
    present = np.bitwise_or.reduce(candidate_masks)
    for k in range(1, MAX_SHORT_TOKENS + 1):
        if not (int(present) >> k) & 1:
            continue
        starts = candidates[(candidate_masks >> _U64(k)) & _U64(1) == 1]
        starts = starts[starts + k <= len(tokens)]
        starts = starts[tokens.doc[starts] == tokens.doc[starts + k - 1]]
        yield starts, starts + k


@dataclass
class Matches:
    """Token ranges of a batch found in the index (start, exclusive end) and the ref each belongs to."""

    start: np.ndarray
    end: np.ndarray
    ref: np.ndarray


@dataclass
class _Entries:
    """Candidate entries while building: one row per (window or short text) of one body."""

    hash: list[np.ndarray] = field(default_factory=list)
    body: list[np.ndarray] = field(default_factory=list)
    informative: list[np.ndarray] = field(default_factory=list)
    short: list[np.ndarray] = field(default_factory=list)

    def add(self, hashes: np.ndarray, bodies: np.ndarray, informative: np.ndarray, short: bool) -> None:
        self.hash.append(hashes)
        self.body.append(bodies)
        self.informative.append(informative)
        self.short.append(np.full(len(hashes), short))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if not self.hash:
            return np.zeros(0, _U64), np.zeros(0, np.int64), np.zeros(0, bool), np.zeros(0, bool)
        return (
            np.concatenate(self.hash),
            np.concatenate(self.body),
            np.concatenate(self.informative),
            np.concatenate(self.short),
        )


@dataclass
class NGramIndex:
    config: IndexConfig
    hashes: np.ndarray
    refs: np.ndarray
    short_first: np.ndarray
    short_masks: np.ndarray
    ref_benchmark: np.ndarray
    ref_field: np.ndarray
    ref_item: list[str]
    benchmarks: list[str]
    fields: list[str]
    meta: dict[str, Any] = field(default_factory=dict)
    bitmap: np.ndarray = field(init=False, repr=False)
    _shift: np.uint64 = field(init=False, repr=False)

    def __post_init__(self) -> None:
        bits = max(16, int(np.ceil(np.log2(max(1, len(self.hashes)) * 32))))
        self._shift = _U64(64 - bits)
        slots = self.hashes >> self._shift
        self.bitmap = np.zeros(1 << (bits - 3), dtype=np.uint8)
        np.bitwise_or.at(self.bitmap, slots >> _U64(3), (1 << (slots & _U64(7))).astype(np.uint8))

    # --- building ---------------------------------------------------------------------------------

    @classmethod
    def build(cls, texts: Iterable[BenchmarkText], config: IndexConfig | None = None) -> NGramIndex:
        config = config or IndexConfig()
        refs: dict[tuple[str, str, str], int] = {}
        benchmarks: list[str] = []
        fields: list[str] = []
        ref_rows: list[tuple[int, int, str]] = []
        bodies: list[str] = []  # every text and variant
        body_ref: list[int] = []
        body_content: list[int] = []  # which original text a body comes from (variants share it)
        body_is_variant: list[bool] = []
        contents: dict[str, int] = {}
        stats: dict[str, dict[str, Any]] = {}
        for text in texts:
            key = (text.benchmark, text.item_id, text.field)
            if key not in refs:
                if text.benchmark not in stats:
                    benchmarks.append(text.benchmark)
                    stats[text.benchmark] = {"items": 0, "texts": 0, "short_texts": 0, "too_short": 0}
                if text.field not in fields:
                    fields.append(text.field)
                refs[key] = len(ref_rows)
                ref_rows.append((benchmarks.index(text.benchmark), fields.index(text.field), text.item_id))
            stats[text.benchmark]["texts"] += 1
            # Identical texts (MATH test and MATH-500 share 500 problems) are one content for the guard.
            content = contents.setdefault(text.text, len(contents))
            for number, body_text in enumerate((text.text, *text.variants)):
                bodies.append(body_text)
                body_ref.append(refs[key])
                body_content.append(content)
                body_is_variant.append(number > 0)
        ref_of_body = np.asarray(body_ref, dtype=np.int64)
        content_of_body = np.asarray(body_content, dtype=np.int64)

        chunks = [
            (lo, tokenize(bodies[lo : lo + _BUILD_CHUNK_TEXTS])) for lo in range(0, len(bodies), _BUILD_CHUNK_TEXTS)
        ]
        entries = _Entries()
        first_parts: list[np.ndarray] = []
        length_parts: list[np.ndarray] = []
        for lo, tokens in chunks:
            range_hashes = RangeHasher(tokens)
            starts, ends = windows(tokens, config.n)
            entries.add(
                range_hashes(starts, ends),
                tokens.doc[starts] + lo,
                _count_between(tokens.informative, starts, ends) >= config.min_informative,
                short=False,
            )
            doc_starts, doc_ends = tokens.doc_offsets[:-1], tokens.doc_offsets[1:]
            doc_weight = _count_between(tokens.weight, doc_starts, doc_ends)
            doc_tokens = doc_ends - doc_starts
            short = np.flatnonzero(
                (doc_weight < config.n * WORD_WEIGHT)
                & (doc_tokens >= config.min_tokens)
                & (doc_tokens <= MAX_SHORT_TOKENS)
            )
            entries.add(
                range_hashes(doc_starts[short], doc_ends[short]),
                short + lo,
                _count_between(tokens.informative, doc_starts[short], doc_ends[short]) >= 1,
                short=True,
            )
            first_parts.append(tokens.values[doc_starts[short]])
            length_parts.append(doc_tokens[short])
            for i in np.flatnonzero(doc_weight < config.n * WORD_WEIGHT).tolist():
                if body_is_variant[lo + i]:
                    continue
                bench_stats = stats[benchmarks[ref_rows[body_ref[lo + i]][0]]]
                bench_stats["short_texts" if doc_tokens[i] >= config.min_tokens else "too_short"] += 1
        hashes, body, informative, is_short = entries.arrays()
        lengths = np.concatenate(length_parts) if length_parts else np.zeros(0, np.int64)
        firsts = np.concatenate(first_parts) if first_parts else np.zeros(0, _U64)

        common = np.zeros(len(hashes), dtype=bool)
        if config.max_items is not None and len(hashes):
            short_shapes = _short_shapes(lengths, firsts)
            frequent = _frequent_sequences(
                hashes, content_of_body[body], is_short, short_shapes, chunks, content_of_body, config.max_items
            )
            common = _member(hashes, frequent)
        keep = informative & ~common
        # An item's question (or answer) whose every entry is pruned keeps them all: the guards prune
        # windows, never make an item undetectable. "Which of the following is true?" stays an MMLU entry.
        entry_ref = ref_of_body[body]
        kept_refs = np.zeros(len(ref_rows), dtype=bool)
        kept_refs[entry_ref[keep]] = True
        restored = ~kept_refs[entry_ref]
        keep |= restored
        hashes, entry_refs = _unique_pairs(hashes[keep], entry_ref[keep])
        kept_short = keep[is_short]
        short_first, short_masks = _short_shapes(lengths[kept_short], firsts[kept_short])

        covered = np.zeros(len(ref_rows), dtype=bool)
        covered[entry_refs] = True
        all_items: dict[int, set[str]] = {i: set() for i in range(len(benchmarks))}
        covered_items: dict[int, set[str]] = {i: set() for i in range(len(benchmarks))}
        for (bench_index, _, item), is_covered in zip(ref_rows, covered.tolist(), strict=True):
            all_items[bench_index].add(item)
            if is_covered:
                covered_items[bench_index].add(item)
        for bench_index, bench in enumerate(benchmarks):
            stats[bench]["items"] = len(all_items[bench_index])
            stats[bench]["items_covered"] = len(covered_items[bench_index])
            # Items with no entry at all (every text under min_tokens) cannot be detected: name them.
            stats[bench]["uncovered_items"] = sorted(all_items[bench_index] - covered_items[bench_index])[:100]
        meta = {
            "format": INDEX_FORMAT,
            "normalization": NORMALIZATION_VERSION,
            "unicode": unicodedata.unidata_version,
            "config": dataclasses.asdict(config),
            "entries": len(hashes),
            "pruned_uninformative": int((~informative).sum()),
            "pruned_common": int(common.sum()),
            "restored_texts": len(np.unique(entry_ref[restored & ~(informative & ~common)])),
            "benchmarks": stats,
        }
        return cls(
            config=config,
            hashes=hashes,
            refs=entry_refs.astype(np.int32),
            short_first=short_first,
            short_masks=short_masks,
            ref_benchmark=np.array([r[0] for r in ref_rows], dtype=np.int16),
            ref_field=np.array([r[1] for r in ref_rows], dtype=np.int8),
            ref_item=[r[2] for r in ref_rows],
            benchmarks=benchmarks,
            fields=fields,
            meta=meta,
        )

    # --- lookup -------------------------------------------------------------------------------------

    def match(self, tokens: Tokens) -> Matches:
        """Every window or short-text range of `tokens` that is in the index, once per ref it belongs to."""
        found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        if len(tokens) and len(self.hashes):
            range_hashes = RangeHasher(tokens)
            ranges = [windows(tokens, self.config.n)]
            ranges.extend(_short_ranges(tokens, self.short_first, self.short_masks))
            for starts, ends in ranges:
                if len(starts):
                    found.append(self._lookup(starts, ends, range_hashes(starts, ends)))
        if not found:
            empty = np.zeros(0, dtype=np.int64)
            return Matches(empty, empty, empty.astype(np.int32))
        return Matches(*(np.concatenate(parts) for parts in zip(*found, strict=True)))

    def _lookup(
        self, starts: np.ndarray, ends: np.ndarray, hashes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        slots = hashes >> self._shift
        maybe = np.flatnonzero((self.bitmap[slots >> _U64(3)] >> (slots & _U64(7)).astype(np.uint8)) & 1)
        lo = np.searchsorted(self.hashes, hashes[maybe], side="left")
        lo[lo == len(self.hashes)] = 0
        hit = self.hashes[lo] == hashes[maybe]
        maybe, lo = maybe[hit], lo[hit]
        counts = np.searchsorted(self.hashes, hashes[maybe], side="right") - lo
        # One row per (range, ref): expand each [lo, hi) run of the sorted array.
        rows = np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        return np.repeat(starts[maybe], counts), np.repeat(ends[maybe], counts), self.refs[rows]

    # --- describing, saving, loading ----------------------------------------------------------------

    @property
    def nbytes(self) -> int:
        """Memory of the loaded index: arrays plus the item id strings."""
        strings = sum(len(s) + 49 for s in self.ref_item)  # CPython str header ~49 bytes
        arrays = (
            self.hashes,
            self.refs,
            self.bitmap,
            self.short_first,
            self.short_masks,
            self.ref_benchmark,
            self.ref_field,
        )
        return int(sum(a.nbytes for a in arrays) + strings)

    def describe(self) -> dict[str, Any]:
        return {**self.meta, "short_text_starts": len(self.short_first), "memory_bytes": self.nbytes}

    def covered_items(self) -> set[tuple[str, str]]:
        """(benchmark, item id) pairs with at least one entry: the items a scan can detect."""
        refs = np.unique(self.refs)
        return {(self.benchmarks[int(self.ref_benchmark[r])], self.ref_item[r]) for r in refs.tolist()}

    def covered_texts(self) -> set[tuple[str, str, str]]:
        """(benchmark, item id, field) of every text with at least one entry."""
        return {
            (self.benchmarks[int(self.ref_benchmark[r])], self.ref_item[r], self.fields[int(self.ref_field[r])])
            for r in np.unique(self.refs).tolist()
        }

    def save(self, path: str | Path) -> None:
        """One uncompressed .npz file (no pickles): ship it with SparkContext.addFile."""
        header = {
            **self.meta,
            "benchmark_names": self.benchmarks,
            "field_names": self.fields,
        }
        with open(path, "wb") as handle:
            np.savez(
                handle,
                hashes=self.hashes,
                refs=self.refs,
                short_first=self.short_first,
                short_masks=self.short_masks,
                ref_benchmark=self.ref_benchmark,
                ref_field=self.ref_field,
                ref_item=np.frombuffer("\x00".join(self.ref_item).encode("utf-8"), dtype=np.uint8),
                header=np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8),
            )

    @classmethod
    def load(cls, path: str | Path) -> NGramIndex:
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
            header = json.loads(arrays["header"].tobytes().decode("utf-8"))
        except (OSError, ValueError, KeyError, UnicodeDecodeError) as exc:
            raise CurateError(f"{path}: not a curate n-gram index ({exc})") from exc
        if header.get("format") != INDEX_FORMAT:
            raise CurateError(f"{path}: index format {header.get('format')!r}, expected {INDEX_FORMAT!r}; rebuild it")
        if header.get("normalization") != NORMALIZATION_VERSION:
            raise CurateError(
                f"{path}: built with normalisation {header.get('normalization')!r} but this curate uses "
                f"{NORMALIZATION_VERSION!r}; rebuild the index"
            )
        if header.get("unicode") != unicodedata.unidata_version:
            raise CurateError(
                f"{path}: built with Unicode {header.get('unicode')} but this Python has "
                f"{unicodedata.unidata_version}; build and scan with the same Python"
            )
        items = arrays["ref_item"].tobytes().decode("utf-8")
        meta = {k: v for k, v in header.items() if k not in ("benchmark_names", "field_names")}
        return cls(
            config=IndexConfig(**header["config"]),
            hashes=arrays["hashes"],
            refs=arrays["refs"],
            short_first=arrays["short_first"],
            short_masks=arrays["short_masks"],
            ref_benchmark=arrays["ref_benchmark"],
            ref_field=arrays["ref_field"],
            ref_item=items.split("\x00") if len(arrays["ref_benchmark"]) else [],
            benchmarks=list(header["benchmark_names"]),
            fields=list(header["field_names"]),
            meta=meta,
        )

    def digest(self) -> str:
        """Content hash of the index (recorded in manifests: a different index is a different stage)."""
        h = xxhash.xxh3_128()
        for array in (self.hashes, self.refs, self.short_first, self.short_masks):
            h.update(array.tobytes())
        h.update("\x00".join(self.ref_item).encode())
        h.update(json.dumps([self.benchmarks, self.fields, self.meta["config"]]).encode())
        return h.hexdigest()


def _frequent_sequences(
    hashes: np.ndarray,
    content: np.ndarray,
    is_short: np.ndarray,
    short_shapes: tuple[np.ndarray, np.ndarray],
    chunks: list[tuple[int, Tokens]],
    content_of_body: np.ndarray,
    max_items: int,
) -> np.ndarray:
    """The sorted hashes of entries whose token sequence occurs in more than `max_items` distinct texts."""
    counted_hash = [hashes]
    counted_content = [content]
    # A short text also occurs inside longer texts as a plain token range: count those occurrences too.
    short_hashes = np.unique(hashes[is_short])
    if len(short_hashes):
        for lo, tokens in chunks:
            range_hashes = RangeHasher(tokens)
            for starts, ends in _short_ranges(tokens, *short_shapes):
                range_hash = range_hashes(starts, ends)
                inside = _member(range_hash, short_hashes)
                counted_hash.append(range_hash[inside])
                counted_content.append(content_of_body[tokens.doc[starts[inside]] + lo])
    pair_hash, _ = _unique_pairs(np.concatenate(counted_hash), np.concatenate(counted_content))
    # pair_hash is sorted: the number of contents holding a sequence is the length of its run.
    run_starts = np.flatnonzero(np.r_[True, pair_hash[1:] != pair_hash[:-1]])
    counts = np.diff(np.r_[run_starts, len(pair_hash)])
    return pair_hash[run_starts[counts > max_items]]
