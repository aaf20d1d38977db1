"""py3langid's model, loaded for many workers and thousands of pages each.

Two costs of the model as shipped dominate language id on a page mix:

- Loading: the model is an LZMA-compressed npz, 0.7 s of CPU to unpack in every Python worker. It is
  unpacked once per machine into plain .npy files (`cache_root()`), which every later worker maps.
- The automaton walk: py3langid counts its byte n-gram features by walking a DFA in a Python loop, one
  step per byte (3/4 of its time per page). The DFA is an Aho-Corasick automaton over byte strings of at
  most `depth` bytes, so the state after each byte is the trie node of the longest suffix ending there that
  is one, and that is computable for all positions at once: grow every window one byte at a time through
  the trie's own edges (an edge into a node one level deeper is the trie edge) and keep the deepest node
  reached at each end position. A batch's texts are walked as one byte string, each followed by a byte
  no trie edge reads (0xFF, which UTF-8 never writes): no window crosses into the next text, and no level
  checks bounds. `_raw_scores` then scores the same counts in the same order as py3langid,
  and `classify_many` decides every text of a batch with py3langid's float32 operations at once (which
  saved ~4 % of language id over py3langid's decision per text), so labels and scores are bit-identical
  (tests/unit/test_language.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

from curate.cache_dir import cache_root

_ARRAYS = ("ptc", "pc", "classes", "nextmove", "nextmove_row", "out_feat", "depth")


class VectorizedIdentifier(LanguageIdentifier):  # type: ignore[misc]
    """py3langid's identifier (`norm_probs=True`) with the automaton walked for all bytes at once."""

    __slots__ = ("_depth", "_max_depth", "_nextmove", "_out", "_rowbase_np", "_separator")

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        from array import array

        def stdlib_array(values: np.ndarray) -> array[int]:
            return array(values.dtype.char, values.tobytes())

        super().__init__(
            arrays["ptc"],
            arrays["pc"],
            arrays["classes"].tolist(),
            # The mapped array itself, not a stdlib copy (39 MB, copied twice on the way): py3langid walks it
            # only for a text in which the vectorized walk found no feature.
            arrays["nextmove"],
            arrays["out_feat"].tolist(),
            norm_probs=True,
            tk_row=stdlib_array(arrays["nextmove_row"]),
        )
        self._nextmove = arrays["nextmove"]
        rowbase = arrays["nextmove_row"].astype(np.int64) << 8
        self._rowbase_np = rowbase.astype(np.int32) if rowbase.max(initial=0) < 2**31 - 256 else rowbase
        self._out = arrays["out_feat"].astype(np.int64)
        self._depth = arrays["depth"]
        self._max_depth = int(self._depth.max())
        self._separator = _window_stop(self._nextmove, rowbase, self._depth)

    def classify_many(self, texts: list[str]) -> list[tuple[str, float]]:
        """`classify` of each text, with the automaton walked, the features counted and the label decided for
        all at once."""
        if not self._norm_probs or self.min_confidence is not None:
            raise ValueError("classify_many decides as py3langid does with norm_probs=True and no min_confidence")
        encoded = [self._encode(text) for text in texts]
        if not encoded:
            return []
        scores = np.stack(self._raw_scores(encoded))
        # py3langid's `_decide` for each row, with the same float32 operations in the same order: the scale is
        # rounded to float32 first, as a Python float multiplying a float32 array is.
        lengths = np.array([len(text) or 1 for text in encoded], dtype=np.float64)
        scores *= (1.0 / np.sqrt(lengths)).astype(scores.dtype)[:, None]
        np.exp(scores - scores.max(axis=1, keepdims=True), out=scores)
        scores /= scores.sum(axis=1, keepdims=True)
        for first, dupe in self._alias_pairs:
            scores[:, first] += scores[:, dupe]
            scores[:, dupe] = 0.0
        best = scores.argmax(axis=1)
        confidences = scores[np.arange(len(encoded)), best].tolist()
        return [
            (self.nb_classes[label], confidence) for label, confidence in zip(best.tolist(), confidences, strict=True)
        ]

    def _raw_score(self, text: bytes) -> np.ndarray:
        return self._raw_scores([text])[0]

    def _raw_scores(self, encoded: list[bytes]) -> list[np.ndarray]:
        lengths = np.fromiter((len(text) for text in encoded), dtype=np.int64, count=len(encoded))
        if self._separator is not None:
            # Each text followed by a byte that ends every window: no window crosses into the next text.
            spans = lengths + 1
            states = self._states(self._separator.join(encoded) + self._separator, None)
        else:
            spans = lengths
            states = self._states(b"".join(encoded), np.repeat(np.cumsum(lengths), lengths))
        ends = np.cumsum(spans)
        features = self._out[states]
        positions = np.flatnonzero(features >= 0)
        documents = np.searchsorted(ends, positions, side="right")
        offsets = positions - (ends - spans)[documents]
        feature_bits = max(1, len(self.nb_ptc) - 1).bit_length()
        offset_bits = max(1, int(lengths.max(initial=1)).bit_length())
        if len(encoded).bit_length() + feature_bits + offset_bits > 63:
            raise ValueError("a batch too large to pack its feature keys into 63 bits: classify fewer texts at once")
        # py3langid sums a page's features in order of first occurrence: the same order gives the same floats.
        # Packed as (document, feature, offset) in one integer, a plain sort (SIMD, 10x a stable argsort) puts
        # each feature's first offset first; packed again as (document, first offset, feature), the next
        # sort gives the order of first occurrence, with no ties (one feature per offset).
        packed = (documents << feature_bits | features[positions]) << offset_bits | offsets
        packed.sort()
        keys = packed >> offset_bits
        heads = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
        counts = np.diff(np.append(heads, len(keys)))
        firsts = packed[heads] & ((1 << offset_bits) - 1)
        keys = keys[heads]
        feature_mask = (1 << feature_bits) - 1
        ordered = ((keys >> feature_bits) << offset_bits | firsts) << feature_bits | (keys & feature_mask)
        order = np.argsort(ordered)
        keys, counts_of = keys[order], counts[order].astype(np.float32)
        bounds = np.searchsorted(keys >> feature_bits, np.arange(len(encoded) + 1))
        scores = []
        for index, text in enumerate(encoded):
            start, stop = bounds[index], bounds[index + 1]
            if start == stop:  # no feature at all: py3langid's own (uniform) answer
                scores.append(super()._raw_score(text))
                continue
            features_of_text = keys[start:stop] & feature_mask
            # `take` gathers the rows in a third less time than fancy indexing, with the same values.
            rows = np.take(self.nb_ptc, features_of_text, axis=0)
            scores.append(np.log1p(counts_of[start:stop]) @ rows + self.nb_pc)
        return scores

    def _states(self, data_bytes: bytes, window_end: np.ndarray | None) -> np.ndarray:
        """The automaton's state after each byte of `data_bytes`, each text restarting at the root: no
        window crosses `window_end`, the end of the text a position belongs to, or with None, the separator
        byte between texts (which the last text is followed by too)."""
        data = np.frombuffer(data_bytes, dtype=np.uint8)
        # 32-bit indices where they fit (always, for the model and a batch of samples): a quarter less time.
        index: type[np.signedinteger[Any]] = (
            np.int32 if len(data) < 2**31 and self._rowbase_np.dtype == np.int32 else np.int64
        )
        # `np.take`, `np.put` and index lists rather than subscripts and masks: the same values, and a fifth
        # less time for language id (0.252 -> 0.203 ms a page text over 802 real page texts, medians of 12
        # alternating passes).
        take = np.take
        states = take(self._nextmove, self._rowbase_np[0] + data).astype(index)
        at_depth_one = take(self._depth, states) == 1
        starts = np.flatnonzero(at_depth_one).astype(index)
        states *= at_depth_one
        nodes = take(states, starts)
        window_end = window_end.astype(index) if window_end is not None else None
        for level in range(2, self._max_depth + 1):
            if window_end is not None:
                inside = np.flatnonzero(starts + (level - 1) < take(window_end, starts))
                starts, nodes = take(starts, inside), take(nodes, inside)
            grown = take(self._nextmove, take(self._rowbase_np, nodes) + take(data, starts + (level - 1)))
            deeper = np.flatnonzero(take(self._depth, grown) == level)
            starts, nodes = take(starts, deeper), take(grown, deeper).astype(index)
            if not len(starts):
                break
            np.put(states, starts + (level - 1), nodes)
        return states


def _window_stop(nextmove: np.ndarray, rowbase: np.ndarray, depth: np.ndarray) -> bytes | None:
    """A byte that no trie edge reads (so no feature holds it, and no window grows past it), or None.

    Bytes that UTF-8 never writes come first; any such byte separates two texts in one walk.
    """
    for byte in (0xFF, 0xFE, 0xC0, 0xC1, 0xF8, 0x00):
        if not np.any(depth[nextmove[rowbase + byte]] == depth + 1):
            return bytes([byte])
    return None


def _trie_depths(nextmove: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Each state's depth in the trie (its shortest path from the root), by breadth-first search."""
    rowbase = rows.astype(np.int64) << 8
    depth = np.full(len(rows), -1, dtype=np.int8)
    depth[0] = 0
    frontier, level = np.array([0]), 0
    while len(frontier):
        reached = np.unique(nextmove[(rowbase[frontier])[:, None] + np.arange(256)].ravel())
        frontier = reached[depth[reached] < 0]
        level += 1
        depth[frontier] = level
    return depth


def _model_arrays(model_file: Path) -> dict[str, np.ndarray]:
    from py3langid.modelio import load_model

    ptc, pc, classes, nextmove, rows, output = load_model(model_file)
    arrays = {
        # Widened once: numpy cannot hand a float16 table to BLAS, and every page's score is a product with it.
        "ptc": np.asarray(ptc, dtype=np.float32),
        "pc": np.asarray(pc),
        "classes": np.asarray(classes),
        "nextmove": np.frombuffer(nextmove, dtype=np.dtype(nextmove.typecode)),
        "nextmove_row": np.frombuffer(rows, dtype=np.dtype(rows.typecode)),
        "out_feat": np.asarray(output),
    }
    arrays["depth"] = _trie_depths(arrays["nextmove"], arrays["nextmove_row"])
    return arrays


def _unpack(arrays: dict[str, np.ndarray], target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    for name, array in arrays.items():
        np.save(staging / f"{name}.npy", array, allow_pickle=False)
    (staging / "done").write_text(target.name)
    staging.rename(target)  # fails if another worker unpacked it first: its copy holds the same bytes


def load_identifier() -> VectorizedIdentifier:
    """The shipped model, unpacked once per machine (kept in memory only when no cache can be written)."""
    model_file = Path(MODEL_DIR) / MODEL_FILE
    key = hashlib.sha256(model_file.read_bytes()).hexdigest()[:16]
    target = cache_root() / f"py3langid-{key}"
    if not (target / "done").exists():
        arrays = _model_arrays(model_file)
        with contextlib.suppress(OSError):
            _unpack(arrays, target)
        if not (target / "done").exists():  # no writable cache here: this worker keeps its own copy
            return VectorizedIdentifier(arrays)
    # Plain arrays over the mapped files (numpy's memmap subclass adds Python work to every gather); the
    # workers of one machine share the pages.
    return VectorizedIdentifier({name: np.asarray(np.load(target / f"{name}.npy", mmap_mode="r")) for name in _ARRAYS})
