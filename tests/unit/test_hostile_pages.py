"""Every generated hostile page through the product's extraction, in process: each finishes within a few
CPU-seconds with its expected outcome (`support.hostile_pages.EXPECTED_DROPS`), and a page just under the
depth limit is still extracted."""

from __future__ import annotations

import time

import pytest
from support.hostile_pages import (
    EXPECTED_DROPS,
    HOSTILE_PAGES,
    STALLING_PAGES,
    deep_formulas,
    nested_divs,
    nested_mjx_containers,
    nested_mrow,
)

from curate.extraction.math_html import MAX_ELEMENT_DEPTH, depth_limit
from curate.steps.extract import extract_record

CPU_SECONDS = 10.0


def test_every_hostile_page_has_an_expected_outcome() -> None:
    assert set(EXPECTED_DROPS) == set(HOSTILE_PAGES)


@pytest.mark.parametrize("name", sorted(HOSTILE_PAGES))
def test_a_hostile_page_finishes_in_seconds_with_its_outcome(name: str) -> None:
    page = HOSTILE_PAGES[name]()
    started = time.process_time()
    text, _, _, reason, detail = extract_record(page, None, "text/html", 1)
    spent = time.process_time() - started
    assert reason == EXPECTED_DROPS[name], detail
    assert (text is None) == (reason is not None)
    assert spent < CPU_SECONDS, f"{spent:.1f} CPU s"


def test_nesting_just_under_the_limit_is_still_extracted() -> None:
    # Unclosed, one tag a level: the limit is MAX_ELEMENT_DEPTH. html > body > (divs) > text.
    text, _, _, reason, _ = extract_record(nested_divs(MAX_ELEMENT_DEPTH - 10, closed=False), None, "text/html", 1)
    assert reason is None and text == "deep text"
    text, _, has_math, reason, _ = extract_record(nested_mrow(200), None, "text/html", 1)
    assert reason is None and text == "Formula: $x$" and has_math  # MathML cut at its own depth limit keeps x
    assert extract_record(nested_divs(MAX_ELEMENT_DEPTH + 10, closed=False), None, "text/html", 1)[3] == "too_deep"


def test_nesting_over_the_tag_level_budget_is_dropped_before_extraction() -> None:
    # Closed, two tags a level (plus the page's own 9): the limit is MAX_TAG_LEVELS / tags, about 3,870 levels.
    under, over = 3800, 3900
    assert depth_limit(2 * under + 9) > under + 2 and depth_limit(2 * over + 9) < over + 2
    text, _, _, reason, _ = extract_record(nested_divs(under), None, "text/html", 1)
    assert reason is None and text == "deep text"
    _, _, _, reason, detail = extract_record(nested_divs(over), None, "text/html", 1)
    assert reason == "too_deep" and "tag-levels" in (detail or "")
    # 1,000 formulas 3,000 levels deep are under the budget: each is found and converted, in a fraction of the time
    # it took when every formula asked each of its ancestors whether one was planned (1.1 CPU s).
    started = time.process_time()
    text, _, has_math, reason, _ = extract_record(deep_formulas(3000, 1000), None, "text/html", 1)
    assert time.process_time() - started < 1.0
    assert reason is None and has_math and text is not None and text.count("$x^{") == 1000


def test_nested_mathjax_containers_under_the_limit_take_a_fraction_of_a_second() -> None:
    # Only the outermost container is a candidate formula: 4,990 nested ones took 5 CPU-s when every one was.
    started = time.process_time()
    page = nested_mjx_containers(MAX_ELEMENT_DEPTH - 10, closed=False)
    text, _, _, reason, _ = extract_record(page, None, "text/html", 1)
    assert reason is None and text == "$x$"
    assert time.process_time() - started < 2.0


def test_pages_that_stall_extraction_are_dropped_at_a_deadline_that_grows_with_their_size() -> None:
    import pyarrow as pa

    from curate.schema import WARC_RECORDS
    from curate.steps.extract import ExtractStep

    stalls = len(STALLING_PAGES)
    pages = [make() for make in STALLING_PAGES.values()] + [b"<p>a page after them</p>"]
    schema = WARC_RECORDS.append(pa.field("host", pa.string())).append(pa.field("registered_domain", pa.string()))
    rows = {name: [None] * len(pages) for name in schema.names}
    rows.update(payload=pages, content_type=["text/html"] * len(pages))
    step = ExtractStep(record_timeout_s=0.5, record_timeout_s_per_mb=1.0)
    started = time.monotonic()
    out = step.process(pa.RecordBatch.from_pydict(rows, schema=schema))
    assert out.column("drop_reason").to_pylist() == ["extract_timeout"] * stalls + [None]
    details = out.column("drop_detail").to_pylist()
    allowed = [0.5 + len(page) / 2**20 for page in pages[:stalls]]  # the page and a few hundred bytes of arguments
    assert [float(detail.split()[3]) for detail in details[:stalls]] == pytest.approx(allowed, abs=0.01)
    assert out.column("text").to_pylist()[stalls] == "a page after them"
    assert time.monotonic() - started < sum(allowed) + 10


@pytest.mark.parametrize("isolated", [True, False], ids=["guarded", "in-process"])
def test_the_step_counts_tag_opens_for_extraction_with_the_same_outcomes(isolated: bool) -> None:
    """ExtractStep counts each page's `<` bytes itself and hands the count to `extract_record`: the outcomes are
    those of `extract_record` counting on its own, the deep page included, and the count is the child's."""
    import pyarrow as pa

    from curate.extraction.math_html import utf8_tag_opens
    from curate.schema import WARC_RECORDS
    from curate.steps.extract import ExtractStep, _tag_opens

    pages = [
        nested_divs(MAX_ELEMENT_DEPTH + 10),
        nested_divs(MAX_ELEMENT_DEPTH - 10, closed=False),
        "<p>caf\u00e9 &lt; 1 <b>x</b> \ufffd</p>".encode(),
        b"<p>\xe9t\xe9 <i>latin-1</i></p>",
    ]
    assert [_tag_opens(page) for page in pages] == [utf8_tag_opens(page) for page in pages]
    schema = WARC_RECORDS.append(pa.field("host", pa.string())).append(pa.field("registered_domain", pa.string()))
    rows = {name: [None] * len(pages) for name in schema.names}
    rows.update(payload=pages, content_type=["text/html"] * len(pages))
    batch = pa.RecordBatch.from_pydict(rows, schema=schema)
    out = ExtractStep(isolated=isolated).process(batch)
    expected = [extract_record(page, None, "text/html", 1) for page in pages]
    assert out.column("drop_reason").to_pylist() == [outcome[3] for outcome in expected]
    assert out.column("text").to_pylist() == [outcome[0] for outcome in expected]
    assert out.column("drop_reason").to_pylist()[:2] == ["too_deep", None]
