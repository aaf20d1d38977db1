"""Every generated hostile page through the product's extraction, in process: each finishes within a few
CPU-seconds with its expected outcome (`support.hostile_pages.EXPECTED_DROPS`), and a page just under the
depth limit is still extracted."""

from __future__ import annotations

import time

import pytest
from support.hostile_pages import EXPECTED_DROPS, HOSTILE_PAGES, nested_divs, nested_mjx_containers, nested_mrow

from curate.extraction.math_html import MAX_ELEMENT_DEPTH
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
    # html > body > (divs) > text: two levels above the divs.
    text, _, _, reason, _ = extract_record(nested_divs(MAX_ELEMENT_DEPTH - 10), None, "text/html", 1)
    assert reason is None and text == "deep text"
    text, _, has_math, reason, _ = extract_record(nested_mrow(200), None, "text/html", 1)
    assert reason is None and text == "Formula: $x$" and has_math  # MathML cut at its own depth limit keeps x
    assert extract_record(nested_divs(MAX_ELEMENT_DEPTH + 10), None, "text/html", 1)[3] == "too_deep"


def test_nested_mathjax_containers_under_the_limit_take_a_fraction_of_a_second() -> None:
    # Only the outermost container is a candidate formula: 4,990 nested ones took 5 CPU-s when every one was.
    started = time.process_time()
    text, _, _, reason, _ = extract_record(nested_mjx_containers(MAX_ELEMENT_DEPTH - 10), None, "text/html", 1)
    assert reason is None and text == "$x$"
    assert time.process_time() - started < 2.0
