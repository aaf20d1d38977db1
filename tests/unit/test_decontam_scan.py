"""Recall on planted leaks and false positives on clean pages, against the index of all shared benchmarks."""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path

import pytest
from support.decontam import full_index, reference_pages
from support.reference_pages import web_text_pages

from curate.decontam.index import NGramIndex
from curate.decontam.loaders import BenchmarkText, load_texts, shared_benchmarks
from curate.decontam.scan import cut, scan

PLANTS_PER_BENCHMARK = 12
SEED = 20261121


@pytest.fixture(scope="module")
def index(shared_data: Path) -> NGramIndex:
    return full_index(shared_data)


@pytest.fixture(scope="module")
def benchmark_texts(shared_data: Path) -> list[BenchmarkText]:
    return load_texts(shared_benchmarks(shared_data))


@pytest.fixture(scope="module")
def web_pages(shared_data: Path) -> list[str]:
    return [p.text for p in web_text_pages(shared_data)]


def _respace(text: str, rng: random.Random) -> str:
    return re.sub(r"[ \t]+", lambda _: rng.choice(["  ", "\n", " \t ", "   "]), text)


def _latex_spacing(text: str) -> str:
    # \frac{1}{2} -> \frac { 1 } { 2 }, x^2 -> x ^ 2: the same formula, typed with spaces.
    return re.sub(r"([{}^_=+])", r" \1 ", text)


def _recase(text: str, rng: random.Random) -> str:
    return text.upper() if rng.random() < 0.5 else text.swapcase()


VARIANTS = ("verbatim", "whitespace", "case", "latex_spacing", "all")


def _variant(text: str, kind: str, rng: random.Random) -> str:
    if kind in ("whitespace", "all"):
        text = _respace(text, rng)
    if kind in ("case", "all"):
        text = _recase(text, rng)
    if kind in ("latex_spacing", "all"):
        text = _latex_spacing(text)
    return text


def _plant(page: str, leak: str, rng: random.Random) -> tuple[str, int]:
    """Insert `leak` at a paragraph boundary of `page`; returns the page and the leak's offset."""
    breaks = [m.end() for m in re.finditer(r"\n", page)] or [len(page)]
    at = rng.choice(breaks)
    prefix = page[:at] + ("\n" if at and page[at - 1] != "\n" else "")
    return prefix + leak + "\n" + page[at:], len(prefix)


def test_planted_benchmark_items_are_all_found(index: NGramIndex, benchmark_texts, web_pages) -> None:
    rng = random.Random(SEED)
    covered = index.covered_texts()
    by_benchmark: dict[str, list[BenchmarkText]] = {}
    for text in benchmark_texts:
        if (text.benchmark, text.item_id, text.field) in covered:
            by_benchmark.setdefault(text.benchmark, []).append(text)
    plants = []
    for benchmark in sorted(by_benchmark):
        for text in rng.sample(by_benchmark[benchmark], PLANTS_PER_BENCHMARK):
            kind = rng.choice(VARIANTS)
            leak = _variant(text.text, kind, rng)
            doc, offset = _plant(rng.choice(web_pages), leak, rng)
            plants.append((text, kind, doc, offset, leak))
    hits = scan([plant[2] for plant in plants], index)
    missed = []
    by_kind: Counter[str] = Counter()
    for (text, kind, doc, offset, leak), doc_hits in zip(plants, hits, strict=True):
        by_kind[kind] += 1
        own = [h for h in doc_hits if (h.benchmark, h.item_id) == (text.benchmark, text.item_id)]
        if not own:
            missed.append((text.benchmark, text.item_id, text.field, kind, text.text[:80]))
            continue
        for hit in own:
            # The reported passage lies inside the planted leak, in original-text coordinates.
            assert offset <= hit.offset and hit.offset + hit.length <= offset + len(leak), (text.item_id, hit)
            assert hit.ngram == doc[hit.offset : hit.offset + len(hit.ngram)]
    print(
        f"\nplanted {len(plants)} items from {len(by_benchmark)} benchmarks, variants {dict(by_kind)}: "
        f"{len(plants) - len(missed)} found"
    )
    assert not missed, missed


def test_chinese_items_are_found_in_running_text(index: NGramIndex, benchmark_texts) -> None:
    chinese = [t for t in benchmark_texts if t.benchmark in ("mgsm_zh", "agieval_gaokao_cloze", "agieval_gaokao_qa")]
    rng = random.Random(SEED)
    picked = rng.sample(chinese, 20)
    context = "这是一个关于数学学习的网页。我们讨论了很多问题，包括下面这道题目。"
    docs = []
    for text in picked:
        # Full-width punctuation and no spaces around Chinese characters, as Chinese pages write it: NFKC
        # and one-character CJK tokens absorb both.
        leak = re.sub(r" *([\u4e00-\u9fff]) *", r"\1", text.text.replace(",", "，").replace("?", "？"))
        docs.append(context + leak + "欢迎大家在评论区留言。")
    hits = scan(docs, index)
    for text, doc, doc_hits in zip(picked, docs, hits, strict=True):
        assert any((h.benchmark, h.item_id) == (text.benchmark, text.item_id) for h in doc_hits), text.text
        for h in doc_hits:
            assert h.offset >= len(context) - 1
            assert doc[h.offset : h.offset + len(h.ngram)] == h.ngram


def test_false_positives_on_clean_pages(index: NGramIndex, shared_data: Path) -> None:
    pages = reference_pages(shared_data)
    hits = scan([p.text for p in pages], index)
    flagged = [(p.source, h[0].benchmark, h[0].item_id, h[0].ngram) for p, h in zip(pages, hits, strict=True) if h]
    rate = len(flagged) / len(pages)
    mb = sum(len(p.text) for p in pages) / 1e6
    print(f"\nclean pages: {len(flagged)} of {len(pages)} flagged ({rate:.3%}), {mb:.1f} M characters; {flagged[:5]}")
    assert len(pages) > 1500
    assert rate <= 0.001, flagged


def test_cut_removes_the_leak_and_keeps_the_page(index: NGramIndex, benchmark_texts, web_pages) -> None:
    text = next(t for t in benchmark_texts if t.benchmark == "math_test" and t.field == "answer" and len(t.text) > 400)
    page = web_pages[3]
    doc, _ = _plant(page, text.text, random.Random(1))
    (doc_hits,) = scan([doc], index)
    assert any(h.item_id == text.item_id for h in doc_hits)
    cleaned = cut(doc, doc_hits)
    assert page.split("\n")[0] in cleaned
    assert len(cleaned) < len(doc) - 0.8 * len(text.text)
    (after,) = scan([cleaned], index)
    assert not [h for h in after if h.item_id == text.item_id and h.matched_tokens > index.config.n]


def test_offsets_point_into_original_non_ascii_text(index: NGramIndex, benchmark_texts) -> None:
    text = next(
        t for t in benchmark_texts if t.benchmark == "math_test" and t.field == "question" and len(t.text) > 200
    )
    # Ligatures, full-width letters and no-break spaces before the leak shift normalised positions.
    prefix = "Ｔｈｅ ﬁrst problem\xa0—\u00a0Ｃａｆｅ\u0301 café… " * 3
    doc = prefix + text.text
    (doc_hits,) = scan([doc], index)
    own = [h for h in doc_hits if h.item_id == text.item_id]
    assert own
    assert own[0].offset >= len(prefix) - 1
    assert doc[own[0].offset : own[0].offset + len(own[0].ngram)] == own[0].ngram
