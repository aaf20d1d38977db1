"""The shared normalisation: what folds together, what stays apart, and offsets back into the original."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import numpy as np
import pytest
from support.reference_pages import web_text_pages

from curate.decontam.normalize import OffsetMap, normalize_text, token_strings, tokenize


def values(text: str) -> list[int]:
    return tokenize([text]).values.tolist()


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (r"\frac{1}{2}", r"\frac { 1 } { 2 }"),
        (r"$x^{2}+\sqrt{y}$", r"\( x ^ 2 + \sqrt y \)"),
        (r"\dfrac{a}{b} \leq c", r"\frac{a}{b}\le c"),
        (r"\left( \frac{\pi}{2} \right)", r"(\frac{\pi}{2})"),
        (r"5 \text{ cm}", "5 cm"),
        ("The  Quick\n\tBrown FOX", "the quick brown fox"),
        ("Ｆｕｌｌ－ｗｉｄｔｈ ＡＢＣ１２３", "full-width abc123"),
        ("café", "cafe\u0301"),  # NFC and NFD spellings
        ("ﬁnd the ﬂoor", "find the floor"),
        ("STRASSE", "straße"),
        ("一个，两个。", "一个 , 两个 ."),
        ("a\xa0b…", "a b..."),
    ],
)
def test_equivalent_spellings_give_the_same_tokens(a: str, b: str) -> None:
    assert values(a) == values(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("x2", "x 3"),
        ("12", "1 2"),  # digit runs are numbers: 12 is not 1, 2
        ("abc", "a b c"),
        ("设集合", "设集"),
    ],
)
def test_different_texts_stay_different(a: str, b: str) -> None:
    assert values(a) != values(b)


def test_tokens_split_cjk_characters_digits_and_letters() -> None:
    assert token_strings("设集合A={x|x≥1}, 则abc设") == ["设", "集", "合", "a", "x", "x", "1", "则", "abc", "设"]
    assert token_strings("3rd mp3 x2") == ["3", "rd", "mp", "3", "x", "2"]


def test_weights_count_prose_words_fully_and_notation_half() -> None:
    tokens = tokenize([r"the value of \frac{x}{12} \begin{pmatrix} 1 \end{pmatrix} 设"])
    words = token_strings(r"the value of \frac{x}{12} \begin{pmatrix} 1 \end{pmatrix} 设")
    weights = dict(zip(words, tokens.weight.tolist(), strict=True))
    assert weights["the"] == weights["value"] == weights["设"] == 2
    assert weights["frac"] == weights["x"] == weights["12"] == 1
    assert weights["pmatrix"] == weights["begin"] == 0
    assert tokens.informative.tolist() == [w == 2 for w in tokens.weight.tolist()]


def test_batches_keep_documents_apart() -> None:
    tokens = tokenize(["alpha beta", "", "gamma"])
    assert tokens.doc_offsets.tolist() == [0, 2, 2, 3]
    assert tokens.doc.tolist() == [0, 0, 2]
    assert tokens.values[2] == tokenize(["gamma"]).values[0]


def test_offsets_map_back_to_the_original_text(shared_data: Path) -> None:
    texts = [p.text for p in web_text_pages(shared_data) if not p.text.isascii()][:200]
    texts.append("Ｔｈｅ ﬁrst\xa0caf\u0065\u0301 ½ x² 设集合 ẞ Ǆ ﬃ ㎏ ① 한국어 e\u0301\u0302")
    checked = 0
    for text in texts:
        mapper = OffsetMap(text)
        assert mapper.exact
        normalized = normalize_text(text)
        tokens = tokenize([text])
        for start, end in zip(tokens.start.tolist(), tokens.end.tolist(), strict=True):
            original = text[mapper.start(start) : mapper.end(end)]
            # The original span normalises to (at least) the token's characters.
            assert normalized[start:end] in unicodedata.normalize("NFKC", original).casefold()
            checked += 1
    assert checked > 10_000


def test_tokenize_handles_empty_input() -> None:
    assert len(tokenize([])) == 0
    assert len(tokenize(["", "   ", "!!"])) == 0
    assert np.array_equal(tokenize(["", "a"]).doc_offsets, [0, 0, 1])
