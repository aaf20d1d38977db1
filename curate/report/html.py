"""Building HTML and SVG that cannot carry markup from data.

Every text node and attribute value goes through `html.escape(..., quote=True)` unless it is a `Markup`,
and the only way to get a `Markup` is to build it here from escaped parts. Crawled content (URLs, page
text, domain names, benchmark snippets) is therefore never pasted into the page as markup: the report of
a run over hostile pages shows `<script>` as text.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from typing import Any

_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9:-]*$")


class Markup(str):
    """A fragment that is already safe HTML. Made only by the functions of this module."""

    __slots__ = ()


def escape(value: Any) -> Markup:
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


def _attribute_value(value: Any) -> str:
    if isinstance(value, float):
        value = f"{value:.2f}".rstrip("0").rstrip(".")
    return html.escape(str(value), quote=True)


def el(tag: str, *children: Any, **attributes: Any) -> Markup:
    """`<tag a="v">children</tag>`. Attribute names: `class_` -> class, `_` -> `-` (e.g. `text_anchor`);
    None or False leaves an attribute out. Children may be nested iterables of children."""
    if not _NAME.match(tag):
        raise ValueError(f"not a tag name: {tag!r}")
    parts = [tag]
    for name, value in attributes.items():
        if value is None or value is False:
            continue
        name = "class" if name == "class_" else name.rstrip("_").replace("_", "-")
        if not _NAME.match(name) or name.lower().startswith("on"):
            raise ValueError(f"attribute not allowed: {name!r}")
        parts.append(name if value is True else f'{name}="{_attribute_value(value)}"')
    return Markup(f"<{' '.join(parts)}>{join(children)}</{tag}>")


def void(tag: str, **attributes: Any) -> Markup:
    """An element without content (`<meta ...>`): the same checks as `el`, no closing tag."""
    element = el(tag, **attributes)
    return Markup(element[: -len(f"</{tag}>")])


def join(children: Iterable[Any]) -> Markup:
    out = []
    for child in children:
        if not isinstance(child, str) and hasattr(child, "__iter__"):
            out.append(join(child))
        else:
            out.append(escape(child))
    return Markup("".join(out))


def fmt_int(value: int | float | None) -> str:
    return "–" if value is None else f"{int(value):,}"


def fmt_float(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def fmt_pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def shorten(text: str | None, limit: int) -> str:
    """Cut before escaping, so an entity is never cut in half."""
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
