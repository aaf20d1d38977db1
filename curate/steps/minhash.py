"""MinHash signatures of documents, vectorised over an Arrow batch, equal to datasketch's `MinHash` values.

Shingles are word n-grams (default 5) of the *normalised* text:

1. Unicode NFKC (full-width letters, ligatures and compatibility forms become their plain equivalents),
2. lowercase (Arrow's utf8proc rules, not Python's `str.lower`: "İ" becomes "i", not "i" + combining dot),
3. punctuation folding: every run of Unicode punctuation (general category P*: quotes, dashes, brackets,
   `\\`, `{`, `}` ...) becomes one space. Symbols (category S*: `+ = < > ^ $`) are kept, so formulas still
   tell `x+y` from `x-y`, while `\\frac{a}{b}` and "frac a b" become the same words,
4. split on Unicode whitespace.

A document with fewer than n words (but at least one) has a single shingle made of all its words, so
short pages can still be matched; a document with no words has no shingles and the empty signature
(every value 2^32 - 1, as an untouched `datasketch.MinHash`); dedup leaves such documents alone.

Hashing (why it is built this way: NOTES-deps §3.4, building shingle strings costs as much as hashing them):
each distinct word of a batch is hashed once with xxh64, and the word hashes are folded into n-gram
hashes with a polynomial over uint64 (Horner's rule, n vectorised passes over the whole batch), finished
with the MurmurHash3 64-bit mixer and cut to 32 bits. `shingle_hash32` is the same function for one
shingle in plain Python: pass it as datasketch's `hashfunc=` and datasketch sees the same 32-bit shingle
hashes. The permutations are datasketch's own (`MinHash(num_perm, seed).permutations`, scheme affine32:
fmix32, then `a * h + b mod 2^32`), applied in uint32 over chunks of shingles.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from curate.errors import ConfigError
from curate.step import Step

EMPTY_VALUE = (1 << 32) - 1
SHINGLE_SET = "shingle_set"
_MASK64 = (1 << 64) - 1
# Odd multiplier of the n-gram polynomial (the 64-bit golden ratio); odd keeps the map bijective mod 2^64.
_NGRAM_BASE = 0x9E3779B97F4A7C15
# Shingles per permutation chunk: one uint32 row of it (256 KB) stays in L2 across
# the permutations, and 128 numpy calls per chunk amortise over 65k values.
_CHUNK_SHINGLES = 1 << 16
_PUNCTUATION_RUN = r"\p{P}+"
# Text per vectorised pass: word-level temporaries cost about 40 bytes per word (~6 per text byte), so
# 16 MB of text stays near 100 MB however large the Arrow batch Spark hands over.
_SLICE_TEXT_BYTES = 16 << 20


@dataclass(frozen=True)
class MinHashParams:
    """What determines a signature (`num_perm`, `ngram`, `seed`) and how LSH bands it (`threshold`).

    `threshold` is datasketch's: `bands_rows` comes from `datasketch.lsh._optimal_param`, which balances
    the false-positive and false-negative areas of the banding S-curve around it. With 128 permutations,
    0.7 gives 14 bands x 9 rows: a pair at Jaccard 0.85 shares a band with probability 0.975, one at 0.5
    with 0.027 (at 0.8 it would be 9 x 13 and only 0.69 for a 0.85 pair).
    """

    num_perm: int = 128
    ngram: int = 5
    seed: int = 1
    threshold: float = 0.7
    false_positive_weight: float = 0.5
    false_negative_weight: float = 0.5

    def __post_init__(self) -> None:
        if self.num_perm < 2:
            raise ConfigError(f"minhash.num_perm must be >= 2, got {self.num_perm}")
        if self.ngram < 1:
            raise ConfigError(f"minhash.ngram must be >= 1, got {self.ngram}")
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"minhash.threshold must be in (0, 1), got {self.threshold}")

    @cached_property
    def bands_rows(self) -> tuple[int, int]:
        from datasketch.lsh import _optimal_param

        bands, rows = _optimal_param(
            self.threshold, self.num_perm, self.false_positive_weight, self.false_negative_weight
        )
        return int(bands), int(rows)

    def signature_config(self) -> dict[str, Any]:
        """The parameters two signature sets must share to be comparable (checked in incremental dedup)."""
        return {"num_perm": self.num_perm, "ngram": self.ngram, "seed": self.seed, "scheme": "affine32"}


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 parameters `(a, b)` as uint32 arrays, taken from datasketch itself."""
    from datasketch import MinHash

    a, b = MinHash(num_perm=num_perm, seed=seed).permutations
    return np.ascontiguousarray(a, dtype=np.uint32), np.ascontiguousarray(b, dtype=np.uint32)


def normalize(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The normalised text the shingles are taken from (see the module docstring); nulls stay null."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    # ASCII is NFKC-invariant, and CPython's unicodedata normalises about 2x faster than Arrow's utf8proc.
    not_ascii = pc.invert(pc.string_is_ascii(texts)).fill_null(False)
    if pc.any(not_ascii).as_py():
        normalised = [unicodedata.normalize("NFKC", s) for s in texts.filter(not_ascii).to_pylist()]
        texts = pc.replace_with_mask(texts, not_ascii, pa.array(normalised, texts.type))
    texts = pc.utf8_lower(texts)
    return pc.replace_substring_regex(texts, _PUNCTUATION_RUN, " ")


def _split_words(texts: pa.Array) -> pa.ListArray:
    # Trim first: pyarrow 26's utf8_split_whitespace sometimes returns the last word of an array's final
    # string with its trailing space attached (seen on "... 3 5 ": "5 " in ~30% of calls), which made
    # signatures differ between runs. With no trailing whitespace the split is stable and equals str.split().
    return pc.utf8_split_whitespace(pc.utf8_trim_whitespace(normalize(texts)))


def words(text: str) -> list[str]:
    """The words of one document, exactly as the batch path sees them."""
    split = _split_words(pa.array([text], pa.large_string()))
    return [w for w in split[0].as_py() or [] if w]


def shingles(text: str, ngram: int = 5) -> set[str]:
    """One document's shingles as space-joined word n-grams (the reference path for tests and benchmarks)."""
    ws = words(text)
    if not ws:
        return set()
    if len(ws) < ngram:
        return {" ".join(ws)}
    return {" ".join(ws[i : i + ngram]) for i in range(len(ws) - ngram + 1)}


def _fmix64(h: np.ndarray) -> np.ndarray:
    # MurmurHash3's 64-bit finaliser; in place, the array is a temporary.
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


def _fmix32(h: np.ndarray) -> np.ndarray:
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


def _fmix64_int(h: int) -> int:
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & _MASK64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & _MASK64
    return h ^ (h >> 33)


def shingle_hash32(shingle: str | bytes) -> int:
    """The 32-bit hash of one space-joined shingle, equal to what the vectorised path computes.

    Meant as datasketch's `hashfunc=`: `MinHash(hashfunc=shingle_hash32).update_batch(shingles(text))`.
    """
    if isinstance(shingle, bytes):
        shingle = shingle.decode()
    acc = 0
    for word in shingle.split(" "):
        acc = (acc * _NGRAM_BASE + xxhash.xxh64_intdigest(word)) & _MASK64
    return _fmix64_int(acc) >> 32


def word_hashes(texts: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """xxh64 of every word of every document, flattened, and the per-document offsets into it.

    Distinct words are hashed once per batch (a dictionary encode in Arrow's C++), so the Python-level
    cost is one xxh64 call per vocabulary entry, not per token.
    """
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    n_docs = len(texts)
    split = _split_words(texts)
    # Nulls and empty texts give null or [""]: drop empty words.
    flat = pc.list_flatten(split)
    parents = np.asarray(pc.list_parent_indices(split))
    non_empty = np.asarray(pc.greater(pc.utf8_length(flat), 0).fill_null(False), dtype=bool)
    if not non_empty.all():
        flat = flat.filter(pa.array(non_empty))
        parents = parents[non_empty]
    offsets = np.zeros(n_docs + 1, dtype=np.int64)
    np.cumsum(np.bincount(parents, minlength=n_docs), out=offsets[1:])
    if len(flat) == 0:
        return np.zeros(0, dtype=np.uint64), offsets
    encoded = pc.dictionary_encode(flat)
    vocab = encoded.dictionary.to_pylist()
    vocab_hashes = np.fromiter(map(xxhash.xxh64_intdigest, vocab), dtype=np.uint64, count=len(vocab))
    indices = np.asarray(encoded.indices)
    return vocab_hashes[indices], offsets


def shingle_hashes(hashes: np.ndarray, offsets: np.ndarray, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """32-bit n-gram hashes per document (flattened, in document order) and their per-document offsets."""
    n_words = np.diff(offsets)
    n_docs = len(n_words)
    full = np.maximum(n_words - ngram + 1, 0)
    short = (n_words > 0) & (n_words < ngram)
    counts = full + short
    out_offsets = np.zeros(n_docs + 1, dtype=np.int64)
    np.cumsum(counts, out=out_offsets[1:])
    out = np.empty(int(out_offsets[-1]), dtype=np.uint64)
    base = np.uint64(_NGRAM_BASE)
    total = len(hashes)

    if total >= ngram and full.any():
        n_windows = total - ngram + 1
        acc = hashes[:n_windows].copy()
        for k in range(1, ngram):
            acc *= base
            acc += hashes[k : k + n_windows]
        # A window is a shingle when it does not run past its document's last word.
        doc_of_word = np.repeat(np.arange(n_docs), n_words)[:n_windows]
        starts = np.arange(n_windows)
        valid = starts + ngram <= offsets[doc_of_word + 1]
        docs = doc_of_word[valid]
        out[out_offsets[docs] + (starts[valid] - offsets[docs])] = acc[valid]

    if short.any():
        first = offsets[:-1][short]
        length = n_words[short]
        acc = hashes[first].copy()
        for k in range(1, ngram - 1):
            more = k < length
            step = acc * base + hashes[np.minimum(first + k, total - 1)]
            acc = np.where(more, step, acc)
        out[out_offsets[:-1][short]] = acc

    return (_fmix64(out) >> np.uint64(32)).astype(np.uint32), out_offsets


def minhash_shingles(
    shingle_hash: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = _CHUNK_SHINGLES
) -> np.ndarray:
    """Per-document minimum of datasketch's affine32 permutations: a (n_docs, num_perm) uint32 matrix."""
    n_docs = len(offsets) - 1
    num_perm = len(a)
    signatures = np.full((n_docs, num_perm), EMPTY_VALUE, dtype=np.uint32)
    total = len(shingle_hash)
    if total == 0:
        return signatures
    mixed = _fmix32(shingle_hash.copy())
    counts = np.diff(offsets)
    doc_of_shingle = np.repeat(np.arange(n_docs), counts)
    # One permutation at a time over a cache-sized chunk: the (num_perm, chunk) layout reduces along
    # contiguous memory, about 10x faster than one (chunk, num_perm) block reduced along axis 0.
    row = np.empty(min(chunk, total), dtype=np.uint32)
    for start in range(0, total, chunk):
        stop = min(start + chunk, total)
        values = mixed[start:stop]
        tmp = row[: stop - start]
        # Segments: each document's part of this chunk (a long document spans several chunks).
        docs = doc_of_shingle[start:stop]
        seg_starts = np.flatnonzero(np.r_[True, docs[1:] != docs[:-1]])
        mins = np.empty((num_perm, len(seg_starts)), dtype=np.uint32)
        for k in range(num_perm):
            np.multiply(values, a[k], out=tmp)
            tmp += b[k]
            mins[k] = np.minimum.reduceat(tmp, seg_starts)
        seg_docs = docs[seg_starts]
        signatures[seg_docs] = np.minimum(signatures[seg_docs], mins.T)
    return signatures


def signatures(
    texts: pa.Array | pa.ChunkedArray,
    params: MinHashParams,
    perms: tuple[np.ndarray, np.ndarray] | None = None,
    *,
    sets: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(signatures as a (n_docs, num_perm) uint32 matrix, number of shingle positions per document).

    `sets`, when given, receives each document's `shingle_sets` entry, from the same shingles.
    """
    a, b = perms if perms is not None else permutations(params.num_perm, params.seed)
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    matrices = []
    counts = []
    for start, stop in _slices_by_bytes(texts, _SLICE_TEXT_BYTES):
        hashes, word_offsets = word_hashes(texts.slice(start, stop - start))
        sh, sh_offsets = shingle_hashes(hashes, word_offsets, params.ngram)
        if sets is not None:
            sets.extend(_distinct_per_document(sh, sh_offsets))
        matrices.append(minhash_shingles(sh, sh_offsets, a, b))
        counts.append(np.diff(sh_offsets).astype(np.int32))
    if not matrices:
        return np.zeros((0, len(a)), dtype=np.uint32), np.zeros(0, dtype=np.int32)
    return np.concatenate(matrices), np.concatenate(counts)


def _slices_by_bytes(texts: pa.Array, limit: int) -> list[tuple[int, int]]:
    """Consecutive [start, stop) row ranges of at most `limit` bytes of text (a bigger document alone)."""
    sizes = np.asarray(pc.binary_length(texts).fill_null(0), dtype=np.int64)
    bounds = [0]
    total = 0
    # A loop over documents, not shingles: it only picks where to cut.
    for i, size in enumerate(sizes.tolist()):
        if total and total + size > limit:
            bounds.append(i)
            total = 0
        total += size
    bounds.append(len(sizes))
    return [(lo, hi) for lo, hi in pairwise(bounds) if hi > lo]


def signature_column(matrix: np.ndarray) -> pa.ListArray:
    """A (n, num_perm) uint32 matrix as SIGNATURES' `minhash` column (list<int64>: Spark has no uint32)."""
    n, num_perm = matrix.shape
    offsets = pa.array(np.arange(0, n * num_perm + 1, num_perm, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(matrix.astype(np.int64).ravel()))


class MinHashStep(Step):
    """Adds `minhash` (list<int64> of uint32 values) and `n_shingles` (int32) computed from `text`.

    With `signatures_only=True` the output is exactly the SIGNATURES schema (doc_id, minhash, n_shingles),
    which is what the dedup stage shuffles: the text does not travel through banding.
    """

    name: ClassVar[str] = "minhash_v1"
    error_reason = "minhash_error"

    def __init__(
        self, params: MinHashParams | None = None, *, signatures_only: bool = False, with_shingle_sets: bool = False
    ) -> None:
        super().__init__()
        self.params = params or MinHashParams()
        self.signatures_only = signatures_only
        # With signatures_only: a `shingle_set` column too, for exact verification without shingling again.
        self.with_shingle_sets = with_shingle_sets
        # Drawn here and shipped with the step (2 x num_perm uint32): importing datasketch pulls in scipy,
        # seconds of start-up that every Spark Python worker would otherwise pay.
        self._perms = permutations(self.params.num_perm, self.params.seed)

    def config(self) -> dict[str, Any]:
        return {**self.params.signature_config(), "normalisation": "nfkc-lower-punct-space"}

    def output_schema(self, input_schema: pa.Schema) -> pa.Schema:
        from curate.schema import SIGNATURES

        if self.signatures_only:
            return SIGNATURES.append(pa.field(SHINGLE_SET, pa.binary())) if self.with_shingle_sets else SIGNATURES
        schema = input_schema
        for field in SIGNATURES:
            if field.name != "doc_id" and schema.get_field_index(field.name) < 0:
                schema = schema.append(field)
        return schema

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        sets: list[np.ndarray] | None = [] if self.with_shingle_sets else None
        matrix, n_shingles = signatures(batch.column("text"), self.params, self._perms, sets=sets)
        minhash = signature_column(matrix)
        counts = pa.array(n_shingles, pa.int32())
        if self.signatures_only:
            columns = [batch.column("doc_id"), minhash, counts]
            names = ["doc_id", "minhash", "n_shingles"]
            if sets is not None:
                columns.append(shingle_set_column(sets))
                names.append(SHINGLE_SET)
            return pa.RecordBatch.from_arrays(columns, names=names)
        for name in ("minhash", "n_shingles"):
            if name in batch.schema.names:
                batch = batch.drop_columns([name])
        batch = batch.append_column("minhash", minhash)
        return batch.append_column("n_shingles", counts)


def shingle_sets(texts: pa.Array | pa.ChunkedArray, ngram: int) -> list[np.ndarray]:
    """Each document's distinct 32-bit shingle hashes, sorted: the sets MinHash estimates the Jaccard of."""
    hashes, word_offsets = word_hashes(texts)
    return _distinct_per_document(*shingle_hashes(hashes, word_offsets, ngram))


def _distinct_per_document(shingle_hash: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [np.unique(shingle_hash[offsets[i] : offsets[i + 1]]) for i in range(len(offsets) - 1)]


def shingle_set_column(sets: list[np.ndarray]) -> pa.BinaryArray:
    """Shingle sets as one binary value each (their uint32 hashes' bytes): the `shingle_set` column."""
    return pa.array([values.astype(np.uint32).tobytes() for values in sets], pa.binary())


def shingle_sets_of_column(column: pa.BinaryArray) -> list[np.ndarray]:
    """The sets of a `shingle_set` column (views of its buffer)."""
    return [np.frombuffer(value.as_buffer(), dtype=np.uint32) for value in column]


def exact_jaccard(left: pa.Array | pa.ChunkedArray, right: pa.Array | pa.ChunkedArray, ngram: int) -> np.ndarray:
    """Jaccard of the shingle sets of `left[i]` and `right[i]`, row by row (two empty sets: 1.0).

    Exact over the 32-bit shingle hashes, the same ones the signatures are built from; a hash collision
    inside one pair's union (about n^2 / 2^33 for n shingles) moves the result by 1 / |union|.
    """
    return set_jaccard(shingle_sets(left, ngram), shingle_sets(right, ngram))


def set_jaccard(left: Sequence[np.ndarray], right: Sequence[np.ndarray]) -> np.ndarray:
    """Jaccard of the sorted distinct hash sets `left[i]` and `right[i]` (as from `shingle_sets`), as float32."""
    out = np.empty(len(left), dtype=np.float32)
    for i, (a, b) in enumerate(zip(left, right, strict=True)):
        union = len(a) + len(b)
        common = len(np.intersect1d(a, b, assume_unique=True)) if union else 0
        out[i] = common / (union - common) if union else 1.0
    return out
