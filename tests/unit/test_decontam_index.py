"""The n-gram rule, the boilerplate guards, and the index file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from curate.decontam.index import IndexConfig, NGramIndex
from curate.decontam.loaders import BenchmarkText
from curate.decontam.scan import scan
from curate.errors import CurateError

LONG = (
    "A farmer has seventeen sheep and all but nine run away through a broken fence near the river, "
    "so how many sheep does the farmer still have left in the field at the end of the day?"
)
SHORT = "Compute the determinant quickly."  # 4 words: shorter than n, matched only as a whole


def bench(*texts: tuple[str, str, str]) -> list[BenchmarkText]:
    return [BenchmarkText("toy", item, field, field, text) for item, field, text in texts]


@pytest.fixture(scope="module")
def toy_index() -> NGramIndex:
    return NGramIndex.build(bench(("1", "question", LONG), ("2", "question", SHORT), ("3", "answer", "Two words")))


def hits_of(index: NGramIndex, *docs: str) -> list[list[tuple[str, str]]]:
    return [[(h.item_id, h.field) for h in doc_hits] for doc_hits in scan(list(docs), index)]


def test_any_ten_words_of_a_benchmark_text_flag_a_page(toy_index: NGramIndex) -> None:
    words = LONG.replace(",", "").replace("?", "").split()
    ten, nine = " ".join(words[14:24]), " ".join(words[14:23])
    # A lone letter (a variable, or the article "a") weighs half a word: with it, ten tokens are not enough.
    with_article = " ".join(words[5:15])
    docs = [f"Intro text. {ten}. Outro.", f"Intro text. {nine}. Outro.", f"Intro. {with_article}. Outro."]
    assert hits_of(toy_index, *docs) == [[("1", "question")], [], []]


def test_short_texts_match_only_as_a_whole(toy_index: NGramIndex) -> None:
    found = hits_of(
        toy_index,
        "Homework: compute the DETERMINANT quickly!",
        "compute the determinant",
        "We compute the determinant slowly.",
        "two words",
    )
    assert found == [[("2", "question")], [], [], []]


def test_hit_reports_offset_length_and_ngram(toy_index: NGramIndex) -> None:
    doc = "Some unrelated prose first. " + LONG + " And more prose after it."
    ((hit,),) = scan([doc], toy_index)
    assert hit.offset == len("Some unrelated prose first. ")
    assert doc[hit.offset : hit.offset + hit.length] == LONG[:-1]  # the final "?" is not a token
    assert doc.startswith(hit.ngram, hit.offset)
    assert hit.matched_tokens == len(LONG.split())


def test_windows_of_numbers_and_single_letters_are_not_indexed_when_a_text_has_words() -> None:
    numbers = (
        "Count 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 and then say how many numbers you counted."
    )
    index = NGramIndex.build(bench(("n", "question", numbers)))
    assert hits_of(index, "page 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 end") == [[]]
    assert hits_of(index, numbers) == [[("n", "question")]]
    formula = r"\frac{1}{2} + \frac{1}{3} + \frac{1}{4} + \frac{1}{5} + \frac{1}{6} + \frac{1}{7} = \frac{223}{140}"
    restored = NGramIndex.build(bench(("f", "answer", formula)))
    # A text made only of notation keeps its windows: pruning never makes a text undetectable.
    assert hits_of(restored, "see: " + formula) == [[("f", "answer")]]
    assert restored.meta["restored_texts"] == 1


def test_boilerplate_shared_by_many_items_is_pruned_but_no_item_is_lost() -> None:
    stem = "Which of the following statements about the given function is true in general"
    texts = [
        (f"b{i}", "question", f"{stem}: option {w} holds for every real value of x.")
        for i, w in enumerate(["alpha", "beta", "gamma", "delta", "epsilon", "zeta"])
    ]
    texts.append(("alone", "question", stem))  # its whole text is the boilerplate
    index = NGramIndex.build(bench(*texts), IndexConfig(max_items=4))
    assert index.meta["pruned_common"] > 0
    flagged = hits_of(index, f"Quiz page. {stem}. Think about it.")[0]
    assert flagged == [("alone", "question")]  # only the item that is nothing but the stem
    assert {(b, i) for b, i, _ in index.covered_texts()} == {("toy", t[0]) for t in texts}
    found = hits_of(index, f"{stem}: option gamma holds for every real value of x.")[0]
    assert sorted(found) == [("alone", "question"), ("b2", "question")]
    unguarded = NGramIndex.build(bench(*texts), IndexConfig(max_items=None))
    assert len(hits_of(unguarded, f"Quiz page. {stem}. Think about it.")[0]) == 7


def test_identical_texts_in_two_benchmarks_both_reported() -> None:
    texts = [BenchmarkText(name, "7", "question", "problem", LONG) for name in ("math_test", "math500")]
    index = NGramIndex.build(texts)
    ((a, b),) = scan([LONG], index)
    assert {a.benchmark, b.benchmark} == {"math_test", "math500"}
    assert index.meta["pruned_common"] == 0


def test_save_load_roundtrip_and_version_check(tmp_path: Path, toy_index: NGramIndex) -> None:
    path = tmp_path / "index.npz"
    toy_index.save(path)
    loaded = NGramIndex.load(path)
    assert loaded.digest() == toy_index.digest()
    assert np.array_equal(loaded.bitmap, toy_index.bitmap)
    assert hits_of(loaded, LONG) == hits_of(toy_index, LONG)
    assert loaded.nbytes > loaded.hashes.nbytes
    (tmp_path / "junk.npz").write_bytes(b"not an index")
    with pytest.raises(CurateError, match="not a curate n-gram index"):
        NGramIndex.load(tmp_path / "junk.npz")


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="max_items"):
        IndexConfig(max_items=0)
    with pytest.raises(ValueError, match="n must be"):
        IndexConfig(n=1)


def test_full_index_memory_and_coverage(shared_data: Path) -> None:
    from support.decontam import full_index

    index = full_index(shared_data)
    info = index.describe()
    print(f"\nfull index: {info['entries']:,} entries, {info['memory_bytes'] / 1e6:.1f} MB in memory")
    assert info["memory_bytes"] < 100e6
    for name, stats in info["benchmarks"].items():
        # Only items whose every text has fewer than min_tokens tokens may be undetectable.
        assert stats["items"] - stats["items_covered"] <= stats["too_short"], name
