"""Hypothesis mutates real pages (the shared math pages and a few articles) the ways the web breaks HTML, and
the product's extraction (`extract_record`, in process) must return a result for every one: text or a named
drop, never an `extract_error` (an exception inside our code or the parser), and within a few CPU-seconds.

The profile is derandomized with a fixed example count, so CI runs the same examples every time.
"""

from __future__ import annotations

import re
import time
from functools import cache
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from support.warcs import real_pages

from curate.steps.extract import extract_record

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CPU_SECONDS_PER_EXAMPLE = 5.0
_TAG = re.compile(rb"<[^<>]{0,200}>")
_NESTING_TAGS = ("div", "span", "mrow", "mjx-container", "table", "li", "math", "b", "svg", "annotation")
_BAD_UTF8 = (b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xe2\x28\xa1", b"\xf0\x28\x8c\x28", b"\xed\xa0\x80", b"\x00", b"\xc0")
_MATH_WRAPPERS = (
    '<script type="math/tex">{}</script>',
    '<script type="math/tex; mode=display">{}</script>',
    '<script type="math/asciimath">{}</script>',
    '<script type="math/mml">{}</script>',
    "<math>{}</math>",
    '<math><semantics><mrow>{}</mrow><annotation encoding="application/x-tex">{}</annotation></semantics></math>',
    '<span class="katex"><span class="katex-mathml">{}</span></span>',
    '<span class="math-container">{}</span>',
    '<img class="tex" alt="{}" src="x.png">',
    "\\[{}",
    "\\({}\\)",
    "$${}",
    "[tex]{}",
    "<mjx-container>{}",
)
_MATH_TOKENS = (
    "\\frac{", "}", "{", "^", "_", "\\sqrt", "sqrt ", "(", ")", "[", "]", "\\left(", "\\right", "\\begin{array}",
    "\\end{", "&", "\\\\", "$", "<mi>x</mi>", "<mrow>", "</mrow>", "<mo>", "<!--", "]]>", "<![CDATA[", "x", " ",
    "α", "\\alpha", "%", "\\", "<", ">", "&amp;", "&#0;", "\n",
)  # fmt: skip


@cache
def _pages() -> tuple[bytes, ...]:
    pages = real_pages(SHARED)
    math = [p.html for p in pages if "math" in p.source.name]
    articles = [p.html for p in pages if p.source.parent.name == "html"][:8]  # article-extraction-benchmark
    assert len(math) >= 25 and len(articles) == 8
    return tuple(math + articles)


def _at(data: bytes, fraction: float) -> int:
    return int(fraction * len(data))


def _tag_span(data: bytes, index: int) -> tuple[int, int] | None:
    spans = [m.span() for m in _TAG.finditer(data)]
    return spans[index % len(spans)] if spans else None


positions = st.floats(min_value=0.0, max_value=1.0)


@st.composite
def mutation(draw: st.DrawFn, data: bytes) -> bytes:
    kind = draw(
        st.sampled_from(("flip", "truncate", "delete_tag", "duplicate_tag", "nest", "attribute", "utf8", "math"))
    )
    event(f"mutation: {kind}")
    if kind == "flip":
        out = bytearray(data)
        for fraction, mask in draw(st.lists(st.tuples(positions, st.integers(1, 255)), min_size=1, max_size=64)):
            if out:
                out[min(_at(out, fraction), len(out) - 1)] ^= mask
        return bytes(out)
    if kind == "truncate":
        return data[: _at(data, draw(positions))]
    if kind in ("delete_tag", "duplicate_tag"):
        span = _tag_span(data, draw(st.integers(0, 10_000)))
        if span is None:
            return data
        start, end = span
        copies = 0 if kind == "delete_tag" else draw(st.integers(2, 300))
        return data[:start] + data[start:end] * copies + data[end:]
    at = _at(data, draw(positions))
    if kind == "nest":
        tag = draw(st.sampled_from(_NESTING_TAGS))
        depth = draw(st.integers(1, 3000))
        closing = f"</{tag}>" * depth if draw(st.booleans()) else ""
        insert = (f"<{tag}>" * depth + "deep" + closing).encode()
    elif kind == "attribute":
        name = draw(st.sampled_from(("title", "alt", "class", "style", "data-tex", "href")))
        value = draw(st.sampled_from(("a", "\\frac{1}{2}", '"', "&amp;", "<b>", " "))) * draw(st.integers(1, 300_000))
        insert = f'<img {name}="{value}" src="x.png"><span {name}="{value}">t</span>'.encode()
    elif kind == "utf8":
        insert = b"".join(draw(st.lists(st.sampled_from(_BAD_UTF8), min_size=1, max_size=200)))
    else:
        wrapper = draw(st.sampled_from(_MATH_WRAPPERS))
        tokens = draw(st.lists(st.sampled_from(_MATH_TOKENS), max_size=80))
        repeat = draw(st.sampled_from((1, 1, 10, 1000)))
        body = "".join(tokens) * repeat
        insert = wrapper.format(body, body).encode()
    return data[:at] + insert + data[at:]


@st.composite
def mutated_pages(draw: st.DrawFn) -> bytes:
    page = draw(st.sampled_from(_pages()))
    for _ in range(draw(st.integers(1, 3))):
        page = draw(mutation(page))
    return page


@settings(
    max_examples=400,
    derandomize=True,
    database=None,
    deadline=None,  # bounded below in CPU time, which a busy shared machine disturbs less than wall time
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(page=mutated_pages(), declared=st.sampled_from(("text/html", "text/html; charset=utf-8", None)))
def test_a_mutated_real_page_extracts_or_is_a_named_drop(page: bytes, declared: str | None) -> None:
    charset = "utf-8" if declared and "charset" in declared else None
    started = time.process_time()
    text, _, _, reason, detail = extract_record(page, charset, declared, 1)
    spent = time.process_time() - started
    assert reason != "extract_error", detail
    expected = ("empty_text", "non_html", "decode_error", "too_deep", "too_many_elements")
    assert reason is None or reason in expected, (reason, detail)
    assert (text is None) == (reason is not None)
    assert spent < CPU_SECONDS_PER_EXAMPLE, f"{spent:.1f} CPU s for one page"
