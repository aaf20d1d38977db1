"""HTML -> main text that keeps mathematics as TeX.

Resiliparse's `extract_plain_text(main_content=True)` drops navigation, footers and ads fast, but it knows
nothing about math: MathJax sources live in `<script>` elements (dropped), KaTeX and MathJax renderings
become glyph soup or vanish, MathML turns into a run of letters, formula images vanish. So before
extracting we rewrite the DOM so that every formula is a plain text node holding its TeX between `$..$`
(inline) or `$$..$$` (display, in its own block element so it gets its own line), and every rendered
duplicate of it is gone. TeX that is already in the page text (`$..$`, `\\(..\\)`, `\\[..\\]`,
`\\begin{env}`) passes through untouched: that is what MathJax itself reads.

The rewrite costs one DOM query by tag name (about 1 ms on a 170 KB page) when a page has no math, so
extraction runs at about 0.8x the speed of resiliparse alone on news pages (`benchmarks/extraction.py`).
After extraction, forum BBCode (`[tex]..[/tex]`) and AsciiMath backticks (on pages that load AsciiMath)
become `$..$` too, and StackExchange's invisible `$\\begingroup$` markers are dropped.
"""

from __future__ import annotations

import html as html_lib
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, unquote_plus

from resiliparse.extract.html2text import extract_plain_text
from resiliparse.parse.html import HTMLTree, NodeType

from curate.extraction.asciimath import asciimath_to_latex
from curate.extraction.mathml import mathml_to_latex

__all__ = [
    "MATH_SPAN_RE",
    "MAX_ELEMENTS",
    "MAX_ELEMENT_DEPTH",
    "MAX_TAG_LEVELS",
    "Extracted",
    "TooDeep",
    "TooManyElements",
    "depth_limit",
    "extract_main_text",
    "iter_math_spans",
    "utf8_tag_opens",
]

# A resiliparse element. Its stubs type `.parent`, `.prev` and friends as the base `Node`, while this module
# only ever follows them to elements (checked through `.type` where it matters).
DOMNode = Any


# Resiliparse's main-content pass costs every element a step for each element above it, and so does matching a
# selector with a descendant part: a page's work grows with its number of tags times its depth (100,000 nested
# <div> took ~123 s; 20,000 short spans of text 4,900 levels deep, 745 KB, 16 CPU s). So a page may nest at most
# MAX_ELEMENT_DEPTH deep, and at most MAX_TAG_LEVELS divided by its number of `<`: 1,200 levels for those 20,000
# spans. No page of the shared data is even 64 elements deep, and none reaches 0.7 million tag-levels.
# A page needs as many tags as its depth, so the C-side selector query that measures depth runs only on pages
# with at least as many `<` as their limit (17 of the 813 real pages).
# The same pass also measures the text under every element, so it costs depth times text too (1 MiB of script
# under 4,000 divs: 13 CPU s). That is not bounded here: a probe sized to the text would run on 252 of the 813
# real pages (+0.09 ms a page), so only the extraction guard's deadline stops such a page.
MAX_ELEMENT_DEPTH = 5000
MAX_TAG_LEVELS = 30_000_000


def depth_limit(tag_opens: int) -> int:
    """The deepest nesting extraction takes on for a page with `tag_opens` `<`."""
    return min(MAX_ELEMENT_DEPTH, MAX_TAG_LEVELS // max(1, tag_opens))


# The parser makes elements the page never wrote: each unclosed formatting element (`<b>`, `<font>`, `<a>`..., all
# different) is opened again in every new paragraph. 20 KB of them made a million elements, and 92 KB ten
# million (3.7 GB, 58 CPU s, most in the depth query and the main-content pass). A page of more elements than
# MAX_ELEMENTS is dropped. Counting them is a walk of the tree, so only a tree that took over
# _SECONDS_BEFORE_COUNTING to parse is counted: a million elements took 0.18 s here, and no real page of the
# shared data over 4.5 ms, so the outcome does not depend on the machine.
MAX_ELEMENTS = 1_000_000
_SECONDS_BEFORE_COUNTING = 0.02


class TooManyElements(ValueError):
    """A page whose parsed tree holds more than `MAX_ELEMENTS` elements."""


class TooDeep(ValueError):
    """A page whose elements nest deeper than its `depth_limit`: no real page does, and extraction would take
    minutes."""


@dataclass(frozen=True, slots=True)
class Extracted:
    text: str
    has_math_markup: bool  # math markup was rewritten, or a formula in the text uses a TeX control word
    n_formulas: int  # TeX spans in `text` (`iter_math_spans`) that look like formulas, not `$5 and $`
    title: str | None


# A TeX span in extracted text. Inline `$..$` may not cross a blank line or hold a bare `$`, so a stray
# currency sign pairs with at most one paragraph, not the rest of the page. The branches are grouped by
# their first character because Python's `re` scans several times faster with that prefix to look for.
# Every span body is tempered: it cannot run past the next opener of its own kind (`\[`, `\(`, `\begin{`),
# and backslashes are consumed in escape pairs, so a failed attempt stops at the next opener and the whole
# scan stays linear. A lazy `.+?` here made 200 KB of unclosed `\[` take minutes. An opener is taken only at
# the start of a run of backslashes, with the pairs before it (`\\\(` is a line break and an opener, `\\(` no
# opener): an attempt from inside a run paired the backslashes the other way, so its body ran past every
# later opener (1,000 of `\\\\(` after one `\[`, 80 KB, took 2.9 s). The check follows the run's first backslash,
# so that the branch still starts with its literal (a lookbehind first made the scan 5 times slower).
_BRACKET_BODY = r"(?:[^\\]|\\\\|\\[^\[\]\\])+?"
_PAREN_BODY = r"(?:[^\\]|\\\\|\\[^()\\])+?"
# One character of an environment's body, or an escape pair; never the start of `\begin{` or `\end{`.
_ENV_CHAR = r"(?:[^\\]|\\\\|\\(?!begin\{|end\{)[^\\])"
MATH_SPAN_RE = re.compile(
    r"\$(?:\$(?P<dd>[^$]+)\$\$|(?<![\\$]\$)(?P<d>[^$\\\n]*(?:(?:\\.|\n(?!\s*\n))[^$\\\n]*)*)\$)"
    rf"|\\(?<!\\\\)(?:\\\\)*(?:\[(?P<bracket>{_BRACKET_BODY})\\\]|\((?P<paren>{_PAREN_BODY})\\\)"
    # An environment may hold environments one level deep (`align` around `cases`), each closed by name.
    rf"|(?P<env>begin\{{(?P<envname>[A-Za-z]+\*?)\}}(?:{_ENV_CHAR}"
    rf"|\\begin\{{(?P<inner>[A-Za-z]+\*?)\}}{_ENV_CHAR}*\\end\{{(?P=inner)\}})*\\end\{{(?P=envname)\}}))",
    re.DOTALL,
)


def iter_math_spans(text: str) -> Iterator[str]:
    """The TeX inside each math span of `text`, in order (environments keep their `\\begin..\\end`)."""
    for match in MATH_SPAN_RE.finditer(text):
        env = match.group("env")
        if env:
            yield "\\" + env.strip()
            continue
        body = match.group("dd") or match.group("d") or match.group("bracket") or match.group("paren")
        if body and body.strip():
            yield body.strip()


# One DOM query finds every candidate, and the selectors are narrow on purpose: resiliparse 2 costs ~25 µs
# for every DOM node that reaches Python, so the C side must not hand over every <script> and <img> of a news
# page (a broad `script, img` selector made extraction 15x slower). Formula images are found by the renderer
# in their URL or class, or by a backslash in their alt text (TeX); Python then checks each one properly.
# KaTeX output needs no selector of its own: it always carries a <math> element. `.math` holds raw TeX for
# KaTeX auto-render and Sphinx/pandoc pages, or, elsewhere, plain text that merely looks mathematical.
_FORMULA_IMAGE_SOURCES = ("latex", "codecogs", "mimetex", "mathtex", "cht=tx")
_FORMULA_IMAGE = ", ".join(
    [
        *(f'[src*="{source}" i]' for source in _FORMULA_IMAGE_SOURCES),
        '[class*="latex" i]',
        '[class~="tex" i]',
        '[alt*="\\\\"]',
    ]
)
# MediaWiki (Wikipedia) puts each formula in a group of hidden MathML beside a fallback image: the group is a
# candidate of its own, and what is inside it is not. Climbing from each <math> to its group and checking the
# fallback image again took 70 us a formula, most of it in node wrappers (a Wikipedia page holds hundreds).
_MEDIAWIKI_GROUP = "mwe-math-element"
_CANDIDATES = [
    'script[type^="math/" i]',
    # Not a <math> inside another: the outer one's replacement covers it, and each nested one would cost a node
    # wrapper in Python (and, when coverage was asked with `closest`, a walk of its ancestors: 5,391 nested took
    # 4.3 s).
    f"math:not(.{_MEDIAWIKI_GROUP} math, math math)",
    # Containers not directly inside another: a directly nested container is its parent's content.
    "> mjx-container",
    ":not(mjx-container) > mjx-container",
    f".{_MEDIAWIKI_GROUP}:not(.{_MEDIAWIKI_GROUP} *)",
    ".math",
    f"img:is({_FORMULA_IMAGE}):not(.{_MEDIAWIKI_GROUP} img)",
]
# Every kind of candidate, wherever it stands: what a planned replacement covers.
_COVERABLE = ", ".join(
    ['script[type^="math/" i]', "math", "mjx-container", f".{_MEDIAWIKI_GROUP}", ".math", f"img:is({_FORMULA_IMAGE})"]
)
# Scripts that may load or configure AsciiMath; they sit in <head>, so they are looked for in the document.
_ASCIIMATH_LOADER = 'script:is([src*="asciimath" i], [src*="am_" i], [type*="mathjax" i])'
# Candidates and loaders in one query: every selector of a list costs a pass over the elements, so grouping
# with `:is` and one query instead of two took the rewrite's queries from 0.16 to 0.10 ms a page.
_MATH_QUERY = ", ".join([*(f"body {selector}" for selector in _CANDIDATES), _ASCIIMATH_LOADER])
# Raw TeX in a `.math` element: a control word or a braced/lettered sub- or superscript.
_LOOKS_LIKE_TEX = re.compile(r"\\[A-Za-z]+|[_^](?:\{|\w)")
_TEX_WORD = re.compile(r"\\[A-Za-z]{2,}")
_NUMBER = re.compile(r"[\d.,]+")
_PROSE = re.compile(r"(?:^|\s)[A-Za-z]{3,}(?:\s|$)")
_HAS_DELIMITERS = re.compile(r"\$|\\\(|\\\[|\\begin\{")
_BLOCK_TAGS = frozenset({"div", "p", "li", "td", "th", "dd", "section", "center", "figure", "blockquote", "pre"})
_PLANNED = "data-curate-math"  # marks an element planned for replacement during `_rewrite_math`
_INVISIBLE_TAGS = frozenset({"style", "script", "noscript", "template", "meta", "link"})
# codecogs / latex.php prefixes that set rendering options, not mathematics.
_IMAGE_OPTIONS = re.compile(
    r"^(?:\s*(?:\\(?:inline|displaystyle|dpi\{\d+\}|bg_\w+|bg\{\w+\}|fg_\w+|fn_\w+|(?:tiny|small|normalsize|"
    r"large|Large|LARGE|huge|Huge)\b)))+"
)
_BR_TEXT = re.compile(r"<br\s*/?>", re.IGNORECASE)
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
# Forum markup (vBulletin/XenForo/phpBB) for TeX that the forum's MathJax config renders.
# Case-insensitive only inside the tag names: a pattern-wide IGNORECASE stops `re` from scanning for the
# literal `[` and made this the slowest step on forum pages.
_BBCODE_TAGS = "(?i:itex|imath|ilatex|tex|math|latex)"
# The body cannot run past another math tag, so an unclosed `[tex]` costs one scan to the next tag, not to
# the end of the page (a lazy `.+?` made many unclosed tags quadratic).
_BBCODE_MATH = re.compile(
    rf"\[(?P<tag>{_BBCODE_TAGS})\](?P<body>(?:[^\[]|\[(?!/?{_BBCODE_TAGS}\]))+?)\[/(?P<end>{_BBCODE_TAGS})\]"
)
_INLINE_BBCODE = frozenset({"itex", "imath", "ilatex"})
# AsciiMath between backticks; `\`` is a literal backtick.
_BACKTICKS = re.compile(r"(?<!\\)`([^`\n]+?)(?<!\\)`")
# StackExchange wraps every post in `$\begingroup$ .. $\endgroup$`, which renders as nothing.
_SE_GROUP = re.compile(r"\$\\(?:begin|end)group\$[ \t]*\n?")
# MediaWiki wraps every formula's TeX in `{\displaystyle ..}`; the formula is what is inside.
_DISPLAYSTYLE_WRAPPER = re.compile(r"^\{\\displaystyle\s*(.*)\}$", re.DOTALL)


# resiliparse's text options for the defaults of `extract_main_text`.
TEXT_OPTIONS: dict[str, Any] = {
    "main_content": True,
    "alt_texts": False,  # image descriptions are not main text; formula images were made text already
    "links": False,
    "comments": False,
    "post_meta": False,  # bylines and dates: not text a model should learn from
    "noscript": False,
}


def extract_main_text(
    html: str, *, main_content: bool = True, comments: bool = False, tag_opens: int | None = None
) -> Extracted:
    """Main text of `html` with formulas as TeX (`$..$` inline, `$$..$$` display, on their own line).

    `comments=True` keeps sections resiliparse classifies as user comments. Off by default: on the article
    benchmark they cost 2 points of token F1, and on the math pages they changed no formula (StackExchange
    answers and forum posts are not classified as comments). `main_content=False` keeps all visible text.
    `tag_opens` is the number of `<` in `html`, from a caller that counts it more cheaply (`utf8_tag_opens`).
    """
    started = time.process_time()
    tree = HTMLTree.parse(html)
    if time.process_time() - started > _SECONDS_BEFORE_COUNTING and tree.document is not None:
        elements = len(tree.document.query_selector_all("*"))
        if elements > MAX_ELEMENTS:
            raise TooManyElements(f"{elements:,} elements after parsing (over {MAX_ELEMENTS:,})")
    if tag_opens is None:
        tag_opens = html.count("<")
    limit = depth_limit(tag_opens)
    if tag_opens >= limit and _deeper_than(tree, limit):
        detail = "" if limit == MAX_ELEMENT_DEPTH else f" ({tag_opens} tags: over {MAX_TAG_LEVELS:,} tag-levels)"
        raise TooDeep(f"elements nest deeper than {limit} levels{detail}")
    rewritten, asciimath_page = _rewrite_math(tree)
    text = extract_plain_text(tree, **{**TEXT_OPTIONS, "main_content": main_content, "comments": comments})
    if asciimath_page and "`" in text:
        text, n_asciimath = _BACKTICKS.subn(_backticks_to_tex, text)
        text = text.replace("\\`", "`")
        rewritten += n_asciimath
    if "group$" in text:
        text = _SE_GROUP.sub("", text)
    if "[/" in text:
        text, n_bbcode = _BBCODE_MATH.subn(_bbcode_to_tex, text)
        rewritten += n_bbcode
    n_formulas = tex_words = 0
    if "$" in text or "\\" in text:
        for span in iter_math_spans(text):
            if _looks_like_formula(span):
                n_formulas += 1
                tex_words += _TEX_WORD.search(span) is not None
    title = tree.title.strip() if tree.title else None
    text = text.strip()
    # Spans alone are weak evidence (`$5 and $10`, PHP's `$_GET`): without rewritten markup, ask for TeX.
    has_math = rewritten > 0 or tex_words > 0
    return Extracted(text=text, has_math_markup=has_math, n_formulas=n_formulas, title=title or None)


def utf8_tag_opens(payload: bytes) -> int:
    """The number of `<` in the text that `payload` decodes to as UTF-8, strictly or with replacement: UTF-8
    writes `<` as the byte 0x3C and uses that byte in no other character, and a decoder replacing a bad
    sequence never swallows it.

    Counted in the bytes by `replace`, which finds each one with memchr: 0.06 ms on the real pages' mean of
    150 KB, where `str.count` on the decoded text took 0.13 ms (it tests every character).
    """
    return len(payload) - len(payload.replace(b"<", b""))


def _deeper_than(tree: HTMLTree, levels: int) -> bool:
    return tree.document is not None and tree.document.query_selector(" > ".join(["*"] * levels)) is not None


def _looks_like_formula(span: str) -> bool:
    """Whether a `$..$` span is a formula rather than the text between two prices."""
    if _TEX_WORD.search(span) or any(char in span for char in "=<>^_"):
        return not _PROSE.search(span) or "\\" in span
    return not _NUMBER.fullmatch(span) and not (" " in span and _PROSE.search(span))


def _backticks_to_tex(match: re.Match[str]) -> str:
    tex = _strip_tex(asciimath_to_latex(match.group(1)))
    return f"${tex}$" if tex else match.group()


def _loads_asciimath(script: DOMNode, source: str, kind: str) -> bool:
    """Whether this script loads or configures AsciiMath (ASCIIMathML.js, MathJax `AM_` configs); `source`
    and `kind` are its `src` and `type`, lowercased.

    Only `src` and MathJax 2 config blocks are read: other inline scripts can be 100 KB JSON blobs, and
    copying their text out of the DOM doubled the cost of the rewrite pass on news pages.
    """
    if source:
        return "asciimath" in source or "am_" in source
    return "mathjax" in kind and "asciimath" in script.text.lower()


def _bbcode_to_tex(match: re.Match[str]) -> str:
    if match.group("tag").lower() != match.group("end").lower():
        return match.group()
    body = match.group("body").strip()
    return f"${body}$" if match.group("tag").lower() in _INLINE_BBCODE else f"$${body}$$"


def _rewrite_math(tree: HTMLTree) -> tuple[int, bool]:
    """Rewrite every formula in `tree` to a TeX text node.

    Returns how many were rewritten, and whether the page loads AsciiMath (its backtick-delimited formulas
    are plain text in the DOM and are converted after extraction).

    Plan first, then edit: every decision is taken on the untouched tree, a candidate inside an already
    planned replacement is skipped, and only then is the DOM changed, each planned element once. (resiliparse
    1.1 left stale nodes behind after edits, then crashed; 2.x does not, and the order is still the clearer.)
    """
    if tree.body is None or tree.document is None:
        return 0, False
    scripts: list[DOMNode] = []
    mjx: list[DOMNode] = []
    mathml: list[DOMNode] = []
    groups: list[DOMNode] = []
    images: list[DOMNode] = []
    classed: list[DOMNode] = []
    asciimath_page = False
    # `.values()`: indexing or iterating a resiliparse 2 node list costs time in proportion to its length for
    # every item (quadratic: 10,000 nodes took minutes); `values()` converts the list once.
    for node in tree.document.query_selector_all(_MATH_QUERY).values():
        tag = node.tag
        if tag == "script":
            kind = (node.getattr("type") or "").lower()
            source = (node.getattr("src") or "").lower()
            if "asciimath" in source or "am_" in source or "mathjax" in kind:  # matched as a loader
                asciimath_page = asciimath_page or _loads_asciimath(node, source, kind)
                # ... and a formula only if it is also a math script in <body> (none real is both).
                if not kind.startswith("math/") or node.closest("body") is None:
                    continue
            scripts.append(node)
        elif tag == "math":
            mathml.append(node)
        elif tag == "img":
            images.append(node)
        elif tag == "mjx-container":
            mjx.append(node)
        elif _MEDIAWIKI_GROUP in (node.class_name or "").split():
            groups.append(node)
        else:
            classed.append(node)
    plan = _Plan()
    # Containers before their contents: a MathJax rendering or mjx-container holds a <math> of its own.
    if scripts:
        _plan_mathjax2(plan, scripts)
    if mjx:
        _plan_mathjax3(plan, mjx)
    if groups:
        _plan_mediawiki(plan, groups)
    if mathml:
        _plan_mathml(plan, mathml)
    if images:
        _plan_formula_images(plan, images)
    if classed:
        _plan_math_class(plan, classed)
    return plan.apply(tree), asciimath_page


class _Plan:
    """Replacements decided on the unmodified tree: (node, TeX or None to delete, display).

    Whether a candidate is covered (is, or lies inside, a planned node) is a set lookup: planning a node also
    records the candidates inside it, found by one C-side query of its subtree. Asking each candidate instead
    (`closest`) walked all its ancestors: 1.8 ms a formula on a page nested 4,900 deep, 13.6 CPU s for a
    page of 5,000 formulas. Planned nodes are also marked with an attribute, so "does this hold a planned
    node" is a single C-side query too, not a walk that brings every descendant into Python.
    """

    def __init__(self) -> None:
        self.edits: list[tuple[DOMNode, str | None, bool]] = []
        # resiliparse nodes hash and compare by the DOM node they wrap; the tree is not edited while planning.
        self._covered: set[DOMNode] = set()

    def covers(self, node: DOMNode) -> bool:
        """Whether `node`, a candidate, is or lies inside a node already planned for replacement."""
        return node in self._covered

    @staticmethod
    def holds_target(node: DOMNode) -> bool:
        """Whether a planned node lies inside `node`."""
        return node.query_selector(f"[{_PLANNED}]") is not None

    def add(self, node: DOMNode, tex: str | None, display: bool = False) -> None:
        node.setattr(_PLANNED, "")
        self._covered.add(node)
        if node.child_element_count:  # a script, an image or a span of TeX holds no candidate: no query
            self._covered.update(node.query_selector_all(_COVERABLE).values())
        self.edits.append((node, tex, display))

    def apply(self, tree: HTMLTree) -> int:
        formulas = 0
        for node, tex, display in self.edits:
            parent = node.parent
            if parent is None:
                continue
            tex = _strip_tex(tex) if tex else ""
            if not tex:
                parent.remove_child(node)
                continue
            new: DOMNode
            if display:
                # A block element gives display math its own line in the extracted text.
                new = tree.create_element("div")
                new.append_child(tree.create_text_node(f"$${tex}$$"))
            else:
                new = tree.create_text_node(f"${tex}$")
            parent.replace_child(new, node)
            formulas += 1
        return formulas


def _strip_tex(tex: str) -> str:
    stripped = tex.strip()
    # `x\ ` is x and a space: stripped to `x\` it would escape the closing `$`.
    if stripped.endswith("\\") and (len(stripped) - len(stripped.rstrip("\\"))) % 2:
        stripped += " "
    return stripped


def _has_class(node: DOMNode, name: str) -> bool:
    return node.type == NodeType.ELEMENT and name in node.class_list


def _script_tex(script: DOMNode) -> str:
    text = script.text.strip()
    if "CDATA" in text:
        # `% <![CDATA[ .. % ]]>`, as XHTML pages wrap script bodies (string operations: a regex with `\s*`
        # at both ends is quadratic on long runs of whitespace).
        head = text.lstrip("% \t\r\n")
        if head.startswith("<![CDATA["):
            text = head[len("<![CDATA[") :]
        if text.rstrip().endswith("]]>"):
            text = text.rstrip()[: -len("]]>")].rstrip().rstrip("%")
    return text.strip()


def _plan_mathjax2(plan: _Plan, scripts: list[DOMNode]) -> None:
    for script in scripts:
        if plan.covers(script):
            continue
        kind = (script.getattr("type") or "").lower()
        display = "mode=display" in kind
        source = _script_tex(script)
        if kind.startswith("math/tex"):
            tex = source
        elif kind.startswith("math/mml"):
            tex = mathml_to_latex(source)
            display = display or 'display="block"' in source
        elif kind.startswith("math/asciimath"):
            tex = asciimath_to_latex(source)
        else:
            continue
        # MathJax 2 writes preview and rendering as the script's preceding siblings; drop them so the
        # formula does not appear twice (or as glyph soup) next to its source.
        sibling = script.prev
        while sibling is not None:
            if sibling.type == NodeType.ELEMENT:
                if not _is_mathjax2_rendering(sibling):
                    break
                plan.add(sibling, None)
            elif sibling.type == NodeType.TEXT and sibling.text.strip():
                break
            sibling = sibling.prev
        plan.add(script, tex, display)


def _is_mathjax2_rendering(node: DOMNode) -> bool:
    classes = node.class_name or ""
    return "MathJax" in classes or "mjx-chtml" in classes or node.id == "MathJax_Message"


def _plan_mathjax3(plan: _Plan, containers: list[DOMNode]) -> None:
    for container in containers:
        if plan.covers(container):
            continue
        display = (container.getattr("display") or "") == "true"
        mathml = container.query_selector("math")
        if mathml is not None:
            tex = mathml_to_latex(mathml)
        elif container.query_selector("mjx-math, svg") is not None:
            tex = ""  # rendered without assistive MathML: the TeX is gone, the glyphs are noise
        else:
            # Captured before typesetting: the container still holds the author's TeX as text.
            tex = container.text
        plan.add(container, tex, display)


def _only_child(node: DOMNode) -> bool:
    return int(node.child_element_count) == 1


def _is_hidden_wrapper(node: DOMNode) -> bool:
    if node.type != NodeType.ELEMENT:
        return False
    style = node.getattr("style") or ""
    if style and _HIDDEN_STYLE.search(style):
        return True
    classes = node.class_name or ""
    return "a11y" in classes or "assistive" in classes.lower() or "sr-only" in classes


def _plan_mathml(plan: _Plan, maths: list[DOMNode]) -> None:
    for math in maths:
        if plan.covers(math):
            continue
        tex = _unwrap_displaystyle(mathml_to_latex(math))
        display = _math_display(math)
        target = math
        parent = math.parent
        if parent is not None and _has_class(parent, "katex-mathml"):
            # KaTeX: span.katex = span.katex-mathml (source) + span.katex-html (glyphs); replace both.
            if parent.parent is not None and _has_class(parent.parent, "katex"):
                target = parent.parent
            if target.parent is not None and _has_class(target.parent, "katex-display"):
                target = target.parent
                display = True
        else:
            # Accessible MathML is often hidden next to a fallback image: replace its hidden wrappers too. Only
            # wrappers of this formula alone, never a hidden section that holds other content.
            while target.parent is not None and _is_hidden_wrapper(target.parent) and _only_child(target.parent):
                target = target.parent
        # No check that `target` is covered: a planned node around it would be around `math` too.
        plan.add(target, tex, display)


def _plan_mediawiki(plan: _Plan, groups: list[DOMNode]) -> None:
    """Each MediaWiki formula group is replaced whole by its MathML's TeX, or, in a group without MathML, by its
    fallback image's (display when the group stands alone, as for any formula image)."""
    for group in groups:
        if plan.covers(group):
            continue
        math = group.query_selector("math")
        if math is not None:
            plan.add(group, _unwrap_displaystyle(mathml_to_latex(math)), _math_display(math))
            continue
        image = group.query_selector(f"img:is({_FORMULA_IMAGE})")
        tex = _image_tex(image) if image is not None else None
        if tex is not None:
            plan.add(group, tex, _stands_alone(group))


def _math_display(math: DOMNode) -> bool:
    return (math.getattr("display") or "").lower() == "block" or (math.getattr("mode") or "") == "display"


def _unwrap_displaystyle(tex: str) -> str:
    wrapped = _DISPLAYSTYLE_WRAPPER.match(tex) if tex.startswith("{\\displaystyle") else None
    return wrapped.group(1) if wrapped is not None and _balanced(wrapped.group(1)) else tex


def _balanced(tex: str) -> bool:
    depth = 0
    escaped = False
    for char in tex:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def _image_tex(img: DOMNode) -> str | None:
    """The TeX of a formula image (from its alt text, else from its URL), or None if it is not one."""
    src = img.getattr("src") or ""
    lowered = src.lower()
    classes = (img.class_name or "").lower()
    tex = img.getattr("alt") or ""
    known = any(source in lowered for source in _FORMULA_IMAGE_SOURCES) or "latex" in classes
    # An unknown renderer still gives itself away by TeX in the alt text (Wikipedia's fallback images).
    if not (known or "tex" in classes.split() or (_TEX_WORD.search(tex) and not _PROSE.search(tex))):
        return None
    if not tex.strip():
        if "latex=" in lowered:
            tex = unquote_plus(src[lowered.index("latex=") + 6 :].split("&", 1)[0])
        elif "chl=" in lowered:
            tex = unquote_plus(src[lowered.index("chl=") + 4 :].split("&", 1)[0])
        elif "?" in src:
            tex = unquote(src.split("?", 1)[1])
        else:
            return None
    tex = html_lib.unescape(_BR_TEXT.sub(" ", tex)).strip()
    tex = _unwrap_displaystyle(_IMAGE_OPTIONS.sub("", tex).strip())
    return tex or None


def _plan_formula_images(plan: _Plan, images: list[DOMNode]) -> None:
    for img in images:
        tex = _image_tex(img)
        # A fallback image inside a formula group planned by the MathML pass goes with its group.
        if tex is None or plan.covers(img):
            continue
        plan.add(img, tex, _stands_alone(img))


def _stands_alone(node: DOMNode) -> bool:
    """True when `node` has no text or inline content beside it up to the nearest line breaks."""
    for step in ("prev", "next"):
        sibling = getattr(node, step)
        while sibling is not None:
            if sibling.type == NodeType.TEXT:
                if sibling.text.strip():
                    return False
            elif sibling.type == NodeType.ELEMENT and sibling.tag not in _INVISIBLE_TAGS:
                if sibling.tag == "br" or sibling.tag in _BLOCK_TAGS:
                    break
                return False
            sibling = getattr(sibling, step)
    return True


def _plan_math_class(plan: _Plan, nodes: list[DOMNode]) -> None:
    for node in nodes:
        if plan.covers(node):
            continue
        tex = node.text.strip()
        # Pandoc and MathJax pages put delimiters inside (`<span class="math inline">\(x\)</span>`): done.
        if not tex or _HAS_DELIMITERS.search(tex) or not _LOOKS_LIKE_TEX.search(tex):
            continue
        if plan.holds_target(node):
            continue  # a `.math` wrapper around a script or <math> that is handled already
        display = node.tag in _BLOCK_TAGS or "display" in node.class_list
        plan.add(node, tex, display)
