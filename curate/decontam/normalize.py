"""The one text normalisation and tokenisation shared by the benchmark index and the document scan.

Canonical form of a text (index and scan must agree exactly, so both call `tokenize`):

1. Unicode NFKC, then `str.casefold()`: full-width letters, ligatures, superscripts and case variants fold
   together (`Ｘ²` -> `x2`, `ﬁ` -> `fi`, `ß` -> `ss`, NFD `é` -> NFC `é`).
2. Every code point has a class (`_char_classes`): separator (punctuation, symbols, whitespace, controls),
   letter (Unicode letters, marks, non-decimal numbers), digit, or CJK (ideographs and kana). A token is a
   run of letters, a run of digits, or one CJK character. Punctuation and whitespace only separate tokens,
   which is what folds whitespace and LaTeX spacing: `\\frac{1}{2}` and `\\frac { 1 } { 2 }` are both
   `frac 1 2`, `x^{2}` and `x ^ 2` are both `x 2`.
3. CJK text is not segmented into words: each character is a token. datatrove's multilingual word
   tokenizer for Chinese is spaCy + jieba; on the shared Chinese benchmark texts it ran at 0.16-0.23 MB/s
   against 6-11 MB/s for this tokeniser (CPU time, two runs of `python benchmarks/decontam.py`), and word
   boundaries buy nothing for exact n-gram matching as long as both sides cut the same way.
4. LaTeX commands that only change layout are dropped (`\\left`, `\\right`, `\\big`, `\\quad`,
   `\\text`, `\\mathrm`, ...) and spelling variants are folded (`\\dfrac` -> `\\frac`, `\\leq` ->
   `\\le`): a benchmark solution copied to a web page keeps its mathematics but rarely its exact markup.
5. Weights: a word of two or more letters and a CJK character fill two half-word units of an n-gram; a
   number, a lone letter (a variable) and a LaTeX command one; environment names (`pmatrix`) none
   (index.py explains why n-grams count weight, not tokens).

A token's value is a 64-bit polynomial hash of its code points, mixed with splitmix64; n-gram hashes are
polynomials over token values (index.py). Everything is vectorised with numpy over a whole batch of
documents: there is no Python object per token, which is where datatrove's decontamination spends its time.

Offsets: tokens carry character positions in the normalised text. For ASCII documents (most web text)
these are positions in the original. Otherwise `OffsetMap` normalises the text again run by run (and
grapheme cluster by cluster where characters combine) to map positions back; that is a Python loop, so
it only runs for documents that have a hit.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# Bumped whenever the token stream for the same text changes: indexes record it and refuse to scan with a
# different one (the hashes would silently stop matching).
NORMALIZATION_VERSION = "nfkc-casefold-digits-cjk-latex-v1"

SEPARATOR, WORD, SINGLE, DIGIT = 0, 1, 2, 3
# N-gram lengths count half words: a word or CJK character fills two, a number, lone letter or LaTeX command
# one, so a 10-gram of `\frac{1}{2} \cdot \frac{1}{3} ...` spans as much text as ten words of prose.
WORD_WEIGHT, MARKUP_WEIGHT = 2, 1

# Odd 64-bit bases, so that they are invertible modulo 2^64 (prefix hashes divide by powers of _P).
_P = 0x9E3779B97F4A7C15
_U64 = np.uint64

_CJK_RANGES = (
    (0x3005, 0x3007),  # 々 〆 〇
    (0x3040, 0x30FF),  # hiragana, katakana
    (0x31F0, 0x31FF),
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # compatibility ideographs (NFKC maps most to unified ones)
    (0x20000, 0x3FFFF),  # extensions B-H
)

# Layout-only LaTeX commands: dropped when the token directly follows a backslash.
_LATEX_DROP = [
    "left",
    "right",
    "middle",
    "big",
    "bigl",
    "bigr",
    "bigm",
    "bigg",
    "biggl",
    "biggr",
    "displaystyle",
    "textstyle",
    "scriptstyle",
    "quad",
    "qquad",
    "text",
    "textrm",
    "textbf",
    "textit",
    "textnormal",
    "mathrm",
    "mathbf",
    "mathit",
    "mathsf",
    "mathtt",
    "mathnormal",
    "rm",
    "bf",
    "it",
    "operatorname",
    "mbox",
    "hbox",
    "limits",
    "nolimits",
    "boldsymbol",
]
_LATEX_ENVIRONMENTS = [
    "begin",
    "end",
    "matrix",
    "pmatrix",
    "bmatrix",
    "vmatrix",
    "smallmatrix",
    "array",
    "cases",
    "align",
    "aligned",
    "equation",
    "eqnarray",
    "gather",
    "split",
    "tabular",
]
_LATEX_SYNONYMS = {
    "dfrac": "frac",
    "tfrac": "frac",
    "dbinom": "binom",
    "tbinom": "binom",
    "leq": "le",
    "geq": "ge",
    "neq": "ne",
    "leqslant": "le",
    "geqslant": "ge",
    "cdotp": "cdot",
}


@functools.cache
def _char_classes() -> np.ndarray:
    """SEPARATOR / WORD / SINGLE for every code point (1.1 MB, built once per process in ~0.15 s)."""
    table = np.zeros(0x110000, dtype=np.uint8)
    category = unicodedata.category
    # Planes 4-13 are unassigned and 15-16 private use: separators, no need to ask unicodedata.
    for cp in (*range(0xD800), *range(0xE000, 0x40000), *range(0xE0000, 0xE1000)):
        cat = category(chr(cp))
        if cat == "Nd":
            table[cp] = DIGIT
        elif cat[0] in "LMN":
            table[cp] = WORD
    for lo, hi in _CJK_RANGES:
        block = table[lo : hi + 1]
        block[block != SEPARATOR] = SINGLE
    return table


_power_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def power_tables(base: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """base^i and base^-i mod 2^64 for i < length (numpy uint64 arithmetic wraps: that is the modulus).

    Grown by doubling and kept, so that a worker builds them a handful of times, not once per batch.
    """
    cached = _power_cache.get(base)
    if cached is None or len(cached[0]) < length:
        size = 1 << max(16, (length - 1).bit_length())
        forward = np.full(size, base, dtype=_U64)
        forward[0] = 1
        inverse = np.full(size, pow(base, -1, 1 << 64), dtype=_U64)
        inverse[0] = 1
        cached = _power_cache[base] = (np.cumprod(forward, dtype=_U64), np.cumprod(inverse, dtype=_U64))
    return cached


def polynomial_hashes(symbols: np.ndarray, base: int) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A function giving sum_j symbols[j] * base^(end-1-j) over j in [start, end) for arrays of ranges.

    With G[i] = sum_{j<i} s_j base^-j (one prefix sum), a range is (G[end] - G[start]) * base^(end-1):
    equal ranges give equal hashes wherever they sit, so a token or an n-gram hashes the same in a
    benchmark text and in a page.
    """
    forward, inverse = power_tables(base, len(symbols) + 1)
    prefix = np.zeros(len(symbols) + 1, dtype=_U64)
    np.cumsum(symbols.astype(_U64) * inverse[: len(symbols)], out=prefix[1:])

    def ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        return (prefix[ends] - prefix[starts]) * forward[np.maximum(ends, 1) - 1]

    return ranges


def splitmix64(x: np.ndarray) -> np.ndarray:
    """A bijective 64-bit mixer: turns structured polynomial hashes into uniformly spread token values."""
    x = x ^ (x >> _U64(30))
    x = x * _U64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> _U64(27))
    x = x * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


def normalize_text(text: str) -> str:
    """The canonical character stream of `text` (before tokenisation)."""
    if text.isascii():
        return text.lower()
    # No-break spaces and ellipses are what keeps most web text from being NFKC already; replacing them by
    # their NFKC form first (same result) lets the cheap check skip the expensive normalisation.
    text = text.replace("\xa0", " ").replace("\u2026", "...")
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    return text.casefold()


def _codepoints(text: str) -> np.ndarray:
    if text.isascii():
        # bytes.lower() only touches ASCII letters, and is several times faster than str.lower().
        return np.frombuffer(text.encode("ascii").lower(), dtype=np.uint8)
    return np.frombuffer(normalize_text(text).encode("utf-32-le"), dtype=np.uint32)


@dataclass
class Tokens:
    """The tokens of a batch of documents, in document order.

    `values[i]` is token i's 64-bit value; `informative[i]` says it is a word of two or more letters or a
    CJK character (not a number, a lone letter such as a variable name, or a LaTeX command); `weight[i]`
    is how much of an n-gram it fills, in half words (`WORD_WEIGHT`, `MARKUP_WEIGHT` or 0); `doc[i]` its
    document; `start[i]:end[i]` its characters in the
    document's normalised text; `doc_offsets[d]:doc_offsets[d+1]` are document d's tokens.
    """

    values: np.ndarray
    weight: np.ndarray
    informative: np.ndarray
    doc: np.ndarray
    start: np.ndarray
    end: np.ndarray
    doc_offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.values)

    def of_doc(self, d: int) -> np.ndarray:
        return self.values[self.doc_offsets[d] : self.doc_offsets[d + 1]]


def _tokenize(texts: Sequence[str], fold_latex: bool) -> Tokens:
    if not texts:
        empty = np.zeros(0, dtype=np.int64)
        return Tokens(
            np.zeros(0, dtype=_U64),
            np.zeros(0, dtype=np.uint8),
            np.zeros(0, dtype=bool),
            empty.astype(np.int32),
            empty,
            empty,
            np.zeros(1, dtype=np.int64),
        )
    pieces: list[np.ndarray] = []
    sep = np.zeros(1, dtype=np.uint32)  # NUL is a separator: keeps tokens of neighbouring docs apart
    for text in texts:
        pieces.append(_codepoints(text))
        pieces.append(sep)
    lengths = np.fromiter((len(p) for p in pieces[::2]), dtype=np.int64, count=len(texts)) + 1
    doc_char_start = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=doc_char_start[1:])
    cp = np.concatenate(pieces, dtype=np.uint32)
    cls = _char_classes()[cp]
    # A run of letters or of digits is one token (a class change splits `x2` and `3rd`); a CJK character is
    # a token by itself. The NUL after every document closes the last run.
    single = cls == SINGLE
    changed = cls[1:] != cls[:-1]
    is_start = single.copy()
    is_start[0] |= cls[0] != SEPARATOR
    is_start[1:] |= changed & (cls[1:] != SEPARATOR)
    is_end = single
    is_end[:-1] |= changed & (cls[:-1] != SEPARATOR)
    starts = np.flatnonzero(is_start)
    ends = np.flatnonzero(is_end) + 1

    values = splitmix64(polynomial_hashes(cp, _P)(starts, ends))

    # LaTeX: a token right after a backslash is a command name.
    is_command = np.zeros(len(starts), dtype=bool)
    if fold_latex:
        nonzero = starts > 0
        is_command[nonzero] = cp[starts[nonzero] - 1] == ord("\\")
    first = cls[starts]
    informative = (first == SINGLE) | ((first == WORD) & (ends - starts >= 2))
    weight = np.where(informative, WORD_WEIGHT, MARKUP_WEIGHT).astype(np.uint8)
    if fold_latex:
        # Commands are notation, not prose: `\frac{1}{2} & \frac{1}{2}` is ten tokens but says nothing about
        # which benchmark item a page copies. Environment names (`\begin{pmatrix}`) weigh nothing at all.
        environment = np.isin(values, _latex_tables()[3])
        informative &= ~(is_command | environment)
        weight[is_command] = MARKUP_WEIGHT
        weight[environment] = 0
    if is_command.any():
        drop_values, synonym_from, synonym_to, _ = _latex_tables()
        command_values = values[is_command]
        keep_command = ~np.isin(command_values, drop_values)
        for src, dst in zip(synonym_from, synonym_to, strict=True):
            command_values[command_values == src] = dst
        values[is_command] = command_values
        keep = np.ones(len(values), dtype=bool)
        keep[is_command] = keep_command
        values, starts, ends = values[keep], starts[keep], ends[keep]
        informative, weight = informative[keep], weight[keep]

    doc = (np.searchsorted(doc_char_start, starts, side="right") - 1).astype(np.int32)
    doc_offsets = np.searchsorted(starts, doc_char_start).astype(np.int64)
    return Tokens(
        values, weight, informative, doc, starts - doc_char_start[doc], ends - doc_char_start[doc], doc_offsets
    )


@functools.cache
def _latex_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    def values(words: Sequence[str]) -> np.ndarray:
        return _tokenize(words, fold_latex=False).values

    return (
        np.unique(values(_LATEX_DROP)),
        values(list(_LATEX_SYNONYMS)),
        values(list(_LATEX_SYNONYMS.values())),
        np.unique(values(_LATEX_ENVIRONMENTS)),
    )


def tokenize(texts: Sequence[str]) -> Tokens:
    """Tokenise a batch of texts (index entries or documents) into one `Tokens`."""
    return _tokenize(texts, fold_latex=True)


def token_count(text: str) -> int:
    return len(tokenize([text]))


def token_strings(text: str) -> list[str]:
    """The tokens of `text` as strings (for tests and debugging; the scan never builds strings)."""
    normalized = normalize_text(text)
    tokens = tokenize([text])
    return [normalized[s:e] for s, e in zip(tokens.start.tolist(), tokens.end.tolist(), strict=True)]


# Characters that can change when NFKC joins them to what precedes them: combining marks, the second half
# of canonical compositions, Hangul vowel and trailing jamo. A "cluster" is one other character followed
# by any number of these; NFKC never combines across a cluster boundary.
@functools.cache
def _cluster_re() -> re.Pattern[str]:
    composers: set[int] = set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3))
    for cp in (*range(0x80, 0xD800), *range(0xE000, 0x40000), *range(0xE0000, 0xE1000)):
        char = chr(cp)
        if unicodedata.combining(char):
            composers.add(cp)
        decomposition = unicodedata.decomposition(char)
        if decomposition and decomposition[0] != "<":
            parts = decomposition.split()
            if len(parts) == 2:
                composers.add(int(parts[1], 16))
    ranges: list[tuple[int, int]] = []
    for cp in sorted(composers):
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    klass = "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)
    # A run holds no character followed by a composer, so nothing in it composes: it can be normalised as
    # a whole. A cluster is a character with the composers after it.
    return re.compile(rf"(?P<run>(?:.(?![{klass}]))+)|(?P<cluster>.[{klass}]*)", re.DOTALL)


_OFFSET_PIECE = 256  # characters normalised at once when mapping offsets; longer pieces rarely keep length


class OffsetMap:
    """Maps character positions in `normalize_text(text)` back to positions in `text`."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.exact = True  # False when positions had to be estimated (see below)
        self._starts: np.ndarray | None = None
        self._ends: np.ndarray | None = None
        if text.isascii():
            return
        normalized = normalize_text(text)
        starts: list[np.ndarray] = []
        ends: list[np.ndarray] = []
        pieces: list[str] = []
        nfkc = unicodedata.normalize
        for match in _cluster_re().finditer(text):
            lo, hi = match.span()
            if match.lastgroup == "cluster":
                out = nfkc("NFKC", match.group()).casefold()
                starts.append(np.full(len(out), lo, dtype=np.int64))
                ends.append(np.full(len(out), hi, dtype=np.int64))
                pieces.append(out)
                continue
            # Nothing composes inside a run, so it can be cut anywhere and normalised piece by piece.
            for piece_lo in range(lo, hi, _OFFSET_PIECE):
                piece_hi = min(hi, piece_lo + _OFFSET_PIECE)
                piece = text[piece_lo:piece_hi]
                out = nfkc("NFKC", piece).casefold()
                if len(out) == len(piece):
                    # Every character maps to at least one: equal lengths mean one each.
                    starts.append(np.arange(piece_lo, piece_hi, dtype=np.int64))
                    ends.append(np.arange(piece_lo + 1, piece_hi + 1, dtype=np.int64))
                else:
                    for position, char in enumerate(piece, start=piece_lo):
                        width = len(nfkc("NFKC", char).casefold())
                        starts.append(np.full(width, position, dtype=np.int64))
                        ends.append(np.full(width, position + 1, dtype=np.int64))
                pieces.append(out)
        if "".join(pieces) == normalized:
            self._starts = np.concatenate([*starts, np.array([len(text)], dtype=np.int64)])
            self._ends = np.concatenate([np.array([0], dtype=np.int64), *ends])
        else:
            # Never seen on the shared data; if it happens, scale positions rather than fail the whole batch.
            self.exact = False
            scale = len(text) / max(1, len(normalized))
            positions = np.arange(len(normalized) + 1, dtype=np.float64) * scale
            self._starts = np.floor(positions).astype(np.int64)
            self._ends = np.ceil(positions).astype(np.int64)

    def start(self, position: int) -> int:
        """Original offset of the normalised character at `position`."""
        return position if self._starts is None else int(self._starts[position])

    def end(self, position: int) -> int:
        """Original end offset (exclusive) of the normalised span ending at `position` (exclusive)."""
        return position if self._ends is None else int(self._ends[position])
