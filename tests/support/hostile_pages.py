"""Small HTML pages that once ended or stalled a whole ingest, generated so every test can have them.

Each is a few MB at most. `HOSTILE_PAGES` maps a name to the page's generator; the extraction of every one must
finish within seconds and either give text or a named drop: `EXPECTED_DROPS` names the drop, or None for a page
whose text is legitimately extractable (the math it breaks is bounded, or kept as the plain text it is).
"""

from __future__ import annotations

from collections.abc import Callable


def _page(body: str, head: str = "") -> bytes:
    return f"<!doctype html><html><head><title>hostile</title>{head}</head><body>{body}</body></html>".encode()


def nested_mrow(depth: int = 5000) -> bytes:
    return _page("<p>Formula: <math>" + "<mrow>" * depth + "<mi>x</mi>" + "</mrow>" * depth + "</math></p>")


def asciimath_sqrt(count: int = 3000) -> bytes:
    return _page(f'<p>Root: <script type="math/asciimath">{"sqrt " * count}x</script></p>')


def asciimath_brackets(count: int = 5000) -> bytes:
    return _page(f'<p>Brackets: <script type="math/asciimath">{"(" * count}x</script></p>')


def unclosed_display_math(size: int = 200_000) -> bytes:
    return _page("<p>" + "\\[ a " * (size // 5) + "</p>")


def unclosed_inline_math(size: int = 200_000) -> bytes:
    return _page("<p>" + "\\( a \\begin{x} b " * (size // 18) + "</p>")


def backslash_runs(count: int = 20_000) -> bytes:
    # An unclosed `\[`, then `\(` at the end of runs of four backslashes (line breaks in TeX, not openers).
    return _page("<p>\\[ " + "x \\\\\\\\( " * count + "</p>")


def unclosed_bbcode(size: int = 200_000) -> bytes:
    return _page("<p>" + "[tex] a " * (size // 8) + "[/x</p>")


def nested_mjx_containers(depth: int = 20_000, *, closed: bool = True) -> bytes:
    return _page("<p>" + "<mjx-container>" * depth + "x" + "</mjx-container>" * depth * closed + "</p>")


def nested_divs(depth: int = 100_000, *, closed: bool = True) -> bytes:
    # Unclosed, the page has one tag a level instead of two: its depth limit is then MAX_ELEMENT_DEPTH itself.
    return _page("<div>" * depth + "deep text" + "</div>" * depth * closed)


def deep_formulas(depth: int = 4900, count: int = 20_000) -> bytes:
    # Under MAX_ELEMENT_DEPTH, but every formula asked each of its ancestors whether it was planned, and the
    # main-content pass took 16 CPU s on the spans' text: 745 KB in all.
    spans = "".join(f'<span class="math">x^{{{i}}}</span> ' for i in range(count))
    return _page("<div>" * depth + f"<p>{spans}</p>" + "</div>" * depth)


def reopened_formatting(distinct: int = 500, paragraphs: int = 2500) -> bytes:
    # Unclosed formatting elements, all different, are opened again in every paragraph: 25 KB, 1.25 million
    # elements after parsing.
    opened = "".join(f'<b id="{i}">' for i in range(distinct))
    return _page(f"<p>{opened}</p>" + "<p>x</p>" * paragraphs)


def huge_attribute(size: int = 2_000_000) -> bytes:
    return _page(f'<p title="{"a" * size}">text</p><img alt="\\frac{"{"}{"1" * size}{"}"}" src="x.png">')


def broken_utf8() -> bytes:
    return _page("<p>valid text before</p>") + b"\xff\xfe\xc3\x28\xa0\xa1\xe2\x28\xa1" * 5000 + b"<p>after</p>"


def many_formulas(count: int = 20_000) -> bytes:
    return _page(
        "".join(
            f"<span class='katex'><span class='katex-mathml'><math><mi>x{i}</mi></math></span></span>"
            for i in range(count)
        )
    )


def cdata_whitespace(size: int = 500_000) -> bytes:
    return _page(f'<p><script type="math/tex">% <![CDATA[ x{" " * size}y</script></p>')


def mathml_comment_soup(count: int = 50_000) -> bytes:
    return _page('<p><script type="math/mml"><math>' + "<!--" * count + "<mi>x</mi></math></script></p>")


def unclosed_scripts(depth: int = 60) -> bytes:
    # Just under the MathML converter's depth cut: every outer <msup> holds one child, the next <msup>.
    return _page("<p>Power: <math>" + "<msup>" * depth + "<mi>x</mi><mn>2</mn></msup></math></p>")


def many_attributes(count: int = 100_000) -> bytes:
    return _page("<img " + " ".join(f"a{i}=x" for i in range(count)) + ' src="x.png"><p>text</p>')


def reopened_optgroups(count: int = 100_000) -> bytes:
    return _page("<select>" + "<option><optgroup>" * count + "</select><p>text</p>")


def deep_text(depth: int = 4000, size: int = 2**20) -> bytes:
    # Main content measures the text under every element, so it costs depth x text (~2-7 ns a character-level):
    # 1 MiB of script under 4,000 divs took 13 CPU s. With fewer than 5,000 tags its depth is never probed.
    return _page("<div>" * depth + "<script>" + "x = 1;\n" * (size // 7) + "</script><p>text</p>")


# Pages that only the extraction guard's deadline stops (`extract_timeout`). On the first two the HTML parser itself
# is quadratic (38 and 58 CPU s); on the third, resiliparse's main-content pass. Nothing cheap enough to run on
# every page tells them from a real one (for the third, `curate.extraction.math_html` says why).
STALLING_PAGES: dict[str, Callable[[], bytes]] = {
    "many_attributes": many_attributes,
    "reopened_optgroups": reopened_optgroups,
    "deep_text": deep_text,
}


HOSTILE_PAGES: dict[str, Callable[[], bytes]] = {
    "nested_mrow": nested_mrow,
    "asciimath_sqrt": asciimath_sqrt,
    "asciimath_brackets": asciimath_brackets,
    "unclosed_display_math": unclosed_display_math,
    "unclosed_inline_math": unclosed_inline_math,
    "unclosed_bbcode": unclosed_bbcode,
    "backslash_runs": backslash_runs,
    "nested_mjx_containers": nested_mjx_containers,
    "nested_divs": nested_divs,
    "huge_attribute": huge_attribute,
    "reopened_formatting": reopened_formatting,
    "broken_utf8": broken_utf8,
    "many_formulas": many_formulas,
    "cdata_whitespace": cdata_whitespace,
    "mathml_comment_soup": mathml_comment_soup,
    "unclosed_scripts": unclosed_scripts,
    "deep_formulas": deep_formulas,
}

EXPECTED_DROPS: dict[str, str | None] = {
    "nested_mrow": "too_deep",
    "asciimath_sqrt": None,
    "asciimath_brackets": None,
    "unclosed_display_math": None,
    "unclosed_inline_math": None,
    "unclosed_bbcode": None,
    "backslash_runs": None,
    "nested_mjx_containers": "too_deep",
    "nested_divs": "too_deep",
    "huge_attribute": None,
    "reopened_formatting": "too_many_elements",
    "broken_utf8": "decode_error",  # 35,000 undecodable characters around two short paragraphs
    "many_formulas": None,
    "cdata_whitespace": None,
    "mathml_comment_soup": None,
    "unclosed_scripts": None,
    "deep_formulas": "too_deep",  # 4,900 levels of 49,800 tags: over MAX_TAG_LEVELS
}
