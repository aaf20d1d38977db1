"""MinHash signatures: equal to datasketch's on real documents, and the shingling edge cases."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from datasketch import MinHash

from curate.errors import ConfigError
from curate.schema import SIGNATURES
from curate.step import run_steps
from curate.steps.minhash import (
    EMPTY_VALUE,
    MinHashParams,
    MinHashStep,
    shingle_hash32,
    shingles,
    signatures,
    words,
)


def _real_texts(shared_data: Path) -> list[str]:
    dclm = shared_data / "web-text" / "dclm-annotated" / "agreement_data.jsonl"
    texts = [json.loads(line)["text"] for line in dclm.read_text().splitlines()[:40]]
    smqa = sorted((shared_data / "math-text" / "stackmathqa" / "data" / "stackmathqa100k").glob("*.jsonl"))[0]
    for line in smqa.read_text().splitlines()[:20]:
        record = json.loads(line)
        texts.append(record["Q"] + "\n" + record["A"])
    return texts


def _datasketch(text: str, params: MinHashParams) -> np.ndarray:
    reference = MinHash(num_perm=params.num_perm, seed=params.seed, hashfunc=shingle_hash32)
    reference.update_batch(sorted(shingles(text, params.ngram)))
    return reference.hashvalues


@pytest.mark.parametrize("params", [MinHashParams(), MinHashParams(num_perm=64, ngram=3, seed=7)])
def test_signatures_equal_datasketch_on_real_documents(shared_data: Path, params: MinHashParams) -> None:
    texts = _real_texts(shared_data)
    matrix, n_shingles = signatures(pa.array(texts), params)
    assert matrix.dtype == np.uint32 and matrix.shape == (len(texts), params.num_perm)
    for row, count, text in zip(matrix, n_shingles, texts, strict=True):
        np.testing.assert_array_equal(row, _datasketch(text, params))
        assert count >= len(shingles(text, params.ngram))  # positions, so repeated shingles count again


def test_chunking_does_not_change_values(shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from curate.steps import minhash

    texts = pa.array(_real_texts(shared_data)[:10])
    whole_batch = signatures(texts, MinHashParams())
    # Slices of a few KB of text: almost every document is its own vectorised pass.
    monkeypatch.setattr(minhash, "_SLICE_TEXT_BYTES", 2000)
    sliced = signatures(texts, MinHashParams())
    np.testing.assert_array_equal(sliced[0], whole_batch[0])
    np.testing.assert_array_equal(sliced[1], whole_batch[1])
    hashes, offsets = minhash.word_hashes(texts)
    sh, sh_offsets = minhash.shingle_hashes(hashes, offsets, 5)
    a, b = minhash.permutations(128, 1)
    whole = minhash.minhash_shingles(sh, sh_offsets, a, b)
    # A chunk of 7 shingles splits nearly every document across chunks.
    np.testing.assert_array_equal(minhash.minhash_shingles(sh, sh_offsets, a, b, chunk=7), whole)


def test_empty_and_short_documents() -> None:
    params = MinHashParams()
    texts = pa.array(["", None, " \n\t ", "... !!", "Two words", "one two three four five", "a b c d e f"])
    matrix, n_shingles = signatures(texts, params)
    assert n_shingles.tolist() == [0, 0, 0, 0, 1, 1, 2]
    # No words: the untouched datasketch value; dedup never bands these.
    assert (matrix[:4] == EMPTY_VALUE).all()
    # Fewer than n words: one shingle of all of them, so short pages still match each other.
    assert shingles("Two words") == {"two words"}
    np.testing.assert_array_equal(matrix[4], _datasketch("Two words", params))
    np.testing.assert_array_equal(matrix[4], signatures(pa.array(["two   WORDS!"]), params)[0][0])
    np.testing.assert_array_equal(matrix[6], _datasketch("a b c d e f", params))


def test_normalisation() -> None:
    # NFKC folds full-width letters, case folds, punctuation runs become word breaks, symbols stay.
    assert words("Ｈｅｌｌｏ, World!") == ["hello", "world"]
    assert words("\\frac{a}{b} x+y=z") == ["frac", "a", "b", "x+y=z"]
    assert words("“Don’t” — stop…") == ["don", "t", "stop"]
    assert words("x+y") != words("x-y")
    assert words("") == []


def test_words_are_whitespace_split_of_normalised_text(shared_data: Path) -> None:
    from curate.steps.minhash import normalize

    # Real texts whose normalised form ends in a space (a final "." folds to " "): the case where pyarrow's
    # own split once leaked the trailing space into the last word, nondeterministically.
    texts = [t for t in _real_texts(shared_data) if t.rstrip()[-1:] in '.?!")']
    assert len(texts) >= 10
    for _ in range(3):
        for text in texts:
            assert words(text) == normalize(pa.array([text]))[0].as_py().split()


def test_shingle_hash_accepts_bytes_like_datasketch_default() -> None:
    assert shingle_hash32(b"a b c d e") == shingle_hash32("a b c d e") < 2**32


def test_step_adds_columns_and_signature_rows(shared_data: Path) -> None:
    texts = [*_real_texts(shared_data)[:5], ""]
    schema = pa.schema([pa.field("doc_id", pa.string()), pa.field("text", pa.string())])
    batch = pa.RecordBatch.from_pydict({"doc_id": [f"d{i}" for i in range(len(texts))], "text": texts}, schema=schema)

    step = pickle.loads(pickle.dumps(MinHashStep()))  # as Spark ships it: recipe only, setup on the worker
    out = pa.Table.from_batches(list(run_steps([step], [batch], schema)))
    assert out.column_names == ["doc_id", "text", "minhash", "n_shingles", "drop_reason", "drop_detail"]
    first = np.array(out.column("minhash")[0].as_py(), dtype=np.uint32)
    np.testing.assert_array_equal(first, _datasketch(texts[0], MinHashParams()))

    rows = pa.Table.from_batches(list(MinHashStep(signatures_only=True).apply([batch])))
    assert rows.schema.names == SIGNATURES.names
    assert rows.column("n_shingles").to_pylist()[-1] == 0
    assert MinHashStep.name.endswith("_v1")


def test_bands_come_from_datasketch() -> None:
    from datasketch.lsh import _optimal_param

    params = MinHashParams(threshold=0.8)
    assert params.bands_rows == _optimal_param(0.8, 128, 0.5, 0.5)
    bands, rows = MinHashParams().bands_rows
    assert bands * rows <= 128
    with pytest.raises(ConfigError, match="threshold"):
        MinHashParams(threshold=1.5)
