"""The report's HTML builder: data is always escaped, markup only comes from the builder itself."""

from __future__ import annotations

import pytest

from curate.report import svg
from curate.report.html import Markup, el, escape, join, shorten, void

HOSTILE = "<script>alert(1)</script>\"'&"


def test_text_and_attributes_are_escaped() -> None:
    out = el("td", HOSTILE, title=HOSTILE, class_="n")
    assert out == (
        '<td title="&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#x27;&amp;" class="n">'
        "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#x27;&amp;</td>"
    )
    assert isinstance(out, Markup)


def test_markup_passes_through_once_and_plain_str_never_does() -> None:
    inner = el("b", HOSTILE)
    assert el("p", inner, HOSTILE) == f"<p>{inner}{escape(HOSTILE)}</p>"
    assert join(["<i>", [inner]]) == f"&lt;i&gt;{inner}"
    assert escape(None) == ""


@pytest.mark.parametrize("name", ["onclick", "onerror", "x y", "a=b", 'q"'])
def test_event_handlers_and_odd_attribute_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        el("a", "x", **{name: "alert(1)"})
    with pytest.raises(ValueError):
        el("scr ipt", "x")


def test_void_elements_and_attribute_spelling() -> None:
    assert void("meta", http_equiv="Content-Security-Policy", content="default-src 'none'") == (
        '<meta http-equiv="Content-Security-Policy" content="default-src &#x27;none&#x27;">'
    )
    assert el("rect", x=1.0, y=2.345, hidden=True, skipped=None) == '<rect x="1" y="2.35" hidden></rect>'


def test_shorten_cuts_before_escaping() -> None:
    cut = shorten("&" * 50, 10)
    assert cut == "&" * 9 + "…"
    assert escape(cut).count("&amp;") == 9


def test_chart_labels_and_tooltips_are_escaped() -> None:
    chart = svg.hbars("t", [(HOSTILE, 3.0, HOSTILE)], threshold=1.0, threshold_label=HOSTILE)
    assert "<script>" not in chart
    assert chart.count("&lt;script&gt;") == 3  # label, tooltip, threshold label (the title is "t")
    bars = svg.share_bars(HOSTILE, [(HOSTILE, 10, [svg.Segment(HOSTILE, 4, "kept"), svg.Segment("x", 6, "d0")])])
    assert "<script>" not in bars
    histogram = svg.histogram(HOSTILE, [0.0, 0.5, 1.0], [3, 0], cutoff=0.5, cutoff_label=HOSTILE)
    assert "<script>" not in histogram and 'class="cut"' in histogram
