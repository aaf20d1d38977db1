"""Presentation MathML -> LaTeX.

`mathml_to_latex` takes either a resiliparse `MathNode` (a `<math>` element from a page already parsed) or a
string holding MathML markup (a `math/mml` MathJax script, a CNXML seed, a test). Either way the formula is
converted from markup text, parsed into a small tree of plain Python objects (`MathNode`): resiliparse 2
pays ~25 µs for every Python-side DOM node wrapper, and walking a formula node by node through them cost more
than the rest of the extraction. The markup is parsed with the standard library's tolerant HTML tokenizer,
not an XML parser, because MathML found on the web uses HTML named entities (`&InvisibleTimes;`, `&nbsp;`)
and is often not well-formed XML. Namespace prefixes (`m:mi`) are ignored.

Web input is hostile: the tree is cut at `MAX_DEPTH` levels and `MAX_NODES` elements (deeper or further
markup keeps only its text), so no formula can exhaust the recursion limit or run for long.

When the author's TeX source is carried along (a `semantics` annotation in `application/x-tex`, as KaTeX,
Wikipedia and MathJax's TeX input emit it, or LaTeXML's `alttext`), that source is returned as is: it is what
the author wrote, and no conversion can beat it. Otherwise the presentation tree is converted. The output aims
at TeX a reader (or a language model) would write, not at a pixel-identical rendering: `\\mathrm`-style details
that MathML cannot express unambiguously are approximated.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from resiliparse.parse.html import DOMNode

__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "TEX_ANNOTATION_ENCODINGS",
    "UNICODE_TO_LATEX",
    "MathNode",
    "join_tex",
    "mathml_to_latex",
    "parse_mathml",
]

# Real formulas nest a few dozen levels at most; the converter recurses about three frames per level.
MAX_DEPTH = 64
MAX_NODES = 20_000

_GREEK = {
    "α": r"\alpha", "β": r"\beta", "γ": r"\gamma", "δ": r"\delta", "ϵ": r"\epsilon", "ε": r"\varepsilon",
    "ζ": r"\zeta", "η": r"\eta", "θ": r"\theta", "ϑ": r"\vartheta", "ι": r"\iota", "κ": r"\kappa",
    "ϰ": r"\varkappa", "λ": r"\lambda", "μ": r"\mu", "ν": r"\nu", "ξ": r"\xi", "ο": "o", "π": r"\pi",
    "ϖ": r"\varpi", "ρ": r"\rho", "ϱ": r"\varrho", "σ": r"\sigma", "ς": r"\varsigma", "τ": r"\tau",
    "υ": r"\upsilon", "ϕ": r"\phi", "φ": r"\varphi", "χ": r"\chi", "ψ": r"\psi", "ω": r"\omega",
    "Γ": r"\Gamma", "Δ": r"\Delta", "Θ": r"\Theta", "Λ": r"\Lambda", "Ξ": r"\Xi", "Π": r"\Pi",
    "Σ": r"\Sigma", "Υ": r"\Upsilon", "Φ": r"\Phi", "Ψ": r"\Psi", "Ω": r"\Omega",
    # Capitals that look like Latin letters have no TeX command of their own.
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
    "Ρ": "P", "Τ": "T", "Χ": "X",
}  # fmt: skip

_SYMBOLS = {
    "±": r"\pm", "∓": r"\mp", "×": r"\times", "÷": r"\div", "⋅": r"\cdot", "·": r"\cdot", "∗": r"\ast",
    "∘": r"\circ", "∙": r"\bullet", "•": r"\bullet", "≤": r"\leq", "⩽": r"\leq", "≥": r"\geq", "⩾": r"\geq",
    "≠": r"\neq", "≈": r"\approx", "≡": r"\equiv", "∼": r"\sim", "≃": r"\simeq", "≅": r"\cong", "∝": r"\propto",
    "≪": r"\ll", "≫": r"\gg", "≺": r"\prec", "≻": r"\succ", "≲": r"\lesssim", "≳": r"\gtrsim", "≍": r"\asymp",
    "≔": ":=", "≜": r"\triangleq", "∞": r"\infty", "∂": r"\partial", "∇": r"\nabla", "∑": r"\sum",
    "∏": r"\prod", "∐": r"\coprod", "∫": r"\int", "∬": r"\iint", "∭": r"\iiint", "∮": r"\oint",
    "⋃": r"\bigcup", "⋂": r"\bigcap", "⨁": r"\bigoplus", "⨂": r"\bigotimes", "⋀": r"\bigwedge",
    "⋁": r"\bigvee", "√": r"\surd", "∈": r"\in", "∉": r"\notin", "∋": r"\ni", "⊂": r"\subset",
    "⊃": r"\supset", "⊆": r"\subseteq", "⊇": r"\supseteq", "⊊": r"\subsetneq", "⊋": r"\supsetneq",
    "∪": r"\cup", "∩": r"\cap", "∅": r"\emptyset", "∀": r"\forall", "∃": r"\exists", "∄": r"\nexists",
    "¬": r"\neg", "∧": r"\wedge", "∨": r"\vee", "⊕": r"\oplus", "⊗": r"\otimes", "⊖": r"\ominus",
    "⊙": r"\odot", "⊥": r"\perp", "∥": r"\parallel", "∠": r"\angle", "∖": r"\setminus", "⊢": r"\vdash",
    "⊨": r"\models", "†": r"\dagger", "‡": r"\ddagger", "⋆": r"\star", "△": r"\triangle", "□": r"\square",
    "∎": r"\blacksquare", "◦": r"\circ", "→": r"\rightarrow", "←": r"\leftarrow", "↔": r"\leftrightarrow",
    "⇒": r"\Rightarrow", "⇐": r"\Leftarrow", "⇔": r"\Leftrightarrow", "↦": r"\mapsto", "⟶": r"\longrightarrow",
    "⟵": r"\longleftarrow", "⟹": r"\Longrightarrow", "⟸": r"\Longleftarrow", "⟺": r"\Longleftrightarrow",
    "↑": r"\uparrow", "↓": r"\downarrow", "⇑": r"\Uparrow", "⇓": r"\Downarrow", "↪": r"\hookrightarrow",
    "…": r"\ldots", "⋯": r"\cdots", "⋮": r"\vdots", "⋱": r"\ddots", "ℏ": r"\hbar", "ℓ": r"\ell",
    "ℵ": r"\aleph", "ℜ": r"\Re", "ℑ": r"\Im", "℘": r"\wp", "⟨": r"\langle", "〈": r"\langle", "⟩": r"\rangle",
    "〉": r"\rangle", "⌊": r"\lfloor", "⌋": r"\rfloor", "⌈": r"\lceil", "⌉": r"\rceil", "‖": r"\|",
    "∣": r"\mid", "∤": r"\nmid", "°": r"^\circ", "−": "-", "–": "-", "′": "'", "″": "''", "‴": "'''",
    "ℝ": r"\mathbb{R}", "ℕ": r"\mathbb{N}", "ℤ": r"\mathbb{Z}", "ℚ": r"\mathbb{Q}", "ℂ": r"\mathbb{C}",
    "ℙ": r"\mathbb{P}", "ℍ": r"\mathbb{H}", "\u00a0": " ", "\u2009": " ", "\u2006": " ", "\u205f": " ",
}  # fmt: skip

# Characters MathML uses for structure only (function application, invisible times/separator/plus).
_INVISIBLE = {"\u2061": "", "\u2062": "", "\u2063": "", "\u2064": "", "\u200b": "", "\ufeff": ""}

# One table for the converter and for the formula-recall normaliser, so both agree on what `≤` is.
UNICODE_TO_LATEX: dict[str, str] = {**_GREEK, **_SYMBOLS, **_INVISIBLE}

TEX_ANNOTATION_ENCODINGS = frozenset({"application/x-tex", "tex", "text/x-tex", "application/x-latex", "latex"})

_FUNCTIONS = frozenset(
    {"sin", "cos", "tan", "cot", "sec", "csc", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "coth", "log",
     "ln", "lg", "exp", "lim", "liminf", "limsup", "max", "min", "sup", "inf", "det", "dim", "ker", "deg", "gcd",
     "hom", "arg", "Pr", "mod"}
)  # fmt: skip
# Operators whose under/over scripts are limits (`\sum_{i}^{n}`), not `\underset`.
_LIMIT_OPERATORS = frozenset(
    [r"\sum", r"\prod", r"\coprod", r"\int", r"\iint", r"\iiint", r"\oint", r"\bigcup", r"\bigcap",
     r"\bigoplus", r"\bigotimes", r"\bigwedge", r"\bigvee", r"\lim", r"\liminf", r"\limsup", r"\max",
     r"\min", r"\sup", r"\inf", r"\det", r"\gcd", r"\Pr"]
)  # fmt: skip

_VARIANTS = {
    "bold": r"\mathbf", "double-struck": r"\mathbb", "script": r"\mathcal", "bold-script": r"\mathcal",
    "fraktur": r"\mathfrak", "bold-fraktur": r"\mathfrak", "bold-italic": r"\boldsymbol",
    "sans-serif": r"\mathsf", "bold-sans-serif": r"\mathsf", "monospace": r"\mathtt", "normal": r"\mathrm",
}  # fmt: skip

# (single-character base, wide base) accents for mover; munder's under-accents separately.
_OVER_ACCENTS = {
    "^": (r"\hat", r"\widehat"), "ˆ": (r"\hat", r"\widehat"), "\u0302": (r"\hat", r"\widehat"),
    "~": (r"\tilde", r"\widetilde"), "˜": (r"\tilde", r"\widetilde"), "\u0303": (r"\tilde", r"\widetilde"),
    "¯": (r"\bar", r"\overline"), "‾": (r"\bar", r"\overline"), "\u0304": (r"\bar", r"\overline"),
    "\u0305": (r"\bar", r"\overline"), "_": (r"\bar", r"\overline"), "―": (r"\bar", r"\overline"),
    "→": (r"\vec", r"\overrightarrow"), "\u20d7": (r"\vec", r"\overrightarrow"),
    "←": (r"\overleftarrow", r"\overleftarrow"), "↔": (r"\overleftrightarrow", r"\overleftrightarrow"),
    "˙": (r"\dot", r"\dot"), "\u0307": (r"\dot", r"\dot"), ".": (r"\dot", r"\dot"),
    "¨": (r"\ddot", r"\ddot"), "\u0308": (r"\ddot", r"\ddot"), "..": (r"\ddot", r"\ddot"),
    "ˇ": (r"\check", r"\check"), "\u030c": (r"\check", r"\check"), "˘": (r"\breve", r"\breve"),
    "´": (r"\acute", r"\acute"), "`": (r"\grave", r"\grave"), "˚": (r"\mathring", r"\mathring"),
    "⏞": (r"\overbrace", r"\overbrace"), "︷": (r"\overbrace", r"\overbrace"),
}  # fmt: skip
_UNDER_ACCENTS = {
    "_": r"\underline", "‾": r"\underline", "¯": r"\underline", "\u0332": r"\underline", "―": r"\underline",
    "⏟": r"\underbrace", "︸": r"\underbrace",
}  # fmt: skip

# MathML 2 named widths, in em (MathJax 2 still writes them).
_NAMED_SPACES = {
    "veryverythinmathspace": 1 / 18, "verythinmathspace": 2 / 18, "thinmathspace": 3 / 18,
    "mediummathspace": 4 / 18, "thickmathspace": 5 / 18, "verythickmathspace": 6 / 18,
    "veryverythickmathspace": 7 / 18,
}  # fmt: skip
_ALIGN = {"left": "l", "right": "r", "center": "c"}
_FENCES = {"{": r"\{", "}": r"\}", "⟨": r"\langle", "⟩": r"\rangle", "‖": r"\|", "": "."}
# Whether `semantics` may answer with its TeX annotation; off for `prefer_source=False` (a contextvar rather
# than a parameter threaded through every converter function).
_USE_ANNOTATIONS: ContextVar[bool] = ContextVar("use_annotations", default=True)
_TEX_SPECIALS = {"{": r"\{", "}": r"\}", "#": r"\#", "%": r"\%", "&": r"\&", "$": r"\$", "_": r"\_"}
_TEXT_ESCAPE = re.compile(r"[{}#%&$_\\]")
_COMMAND_END = re.compile(r"\\[A-Za-z]+$")
_SHORT_SCRIPT_END = re.compile(r"[_^][A-Za-z0-9]$")
_LENGTH = re.compile(r"^\s*(-?(?:\d+\.?\d*|\.\d+))\s*(em|ex|px|pt|mu)?\s*$")


class MathNode:
    """One MathML element: its tag (namespace prefix removed), attributes, and children in document order."""

    __slots__ = ("attributes", "parts", "tag")

    def __init__(self, tag: str, attributes: dict[str, str]) -> None:
        self.tag = tag
        self.attributes = attributes
        self.parts: list[MathNode | str] = []

    def getattr(self, name: str) -> str | None:
        return self.attributes.get(name)

    def hasattr(self, name: str) -> bool:
        return name in self.attributes

    @property
    def elements(self) -> list[MathNode]:
        return [part for part in self.parts if isinstance(part, MathNode)]

    @property
    def text(self) -> str:
        return "".join(part if isinstance(part, str) else part.text for part in self.parts)

    def descendants(self, tag: str) -> Iterator[MathNode]:
        for part in self.parts:
            if isinstance(part, MathNode):
                if part.tag == tag:
                    yield part
                yield from part.descendants(tag)


# HTML elements that never have an end tag; they may turn up inside <mtext> or <annotation-xml>.
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"})
# Markup as lexbor serialises it (and as MathJax scripts and CNXML write it): tags, comments, text. Every
# branch is bounded by a character it cannot contain, so one pass over the markup is linear.
# Possessive (`*+`): where no `>` follows a `<`, the tag's name and attributes are not re-split at every
# length before the `<` is taken as text (a fuzzed page of 1,000 such `<` in a math script took 83 s).
_MARKUP_TOKEN = re.compile(
    r"<(?P<end>/)?(?P<tag>[A-Za-z][^\s/>]*+)(?P<attrs>[^>]*+)>|<!--(?:[^-<]|-(?!->)|<(?!!--))*-->|<[!?][^<>]*>"
    r"|(?P<text>[^<]+|<)"
)
_ATTRIBUTE = re.compile(r"""([^\s=/"']+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")
# Lexbor writes these the HTML way; a bare `&` is left alone by html.unescape.
_ENTITY = "&"
# The TeX source of a formula, when the markup carries it (KaTeX, Wikipedia, MathJax's TeX input, LaTeXML):
# found by a scan of the markup, so most web formulas are never parsed into a tree at all.
_ANNOTATION = re.compile(r"<(?:\w+:)?annotation\b([^>]*)>([^<]*)</(?:\w+:)?annotation>", re.IGNORECASE)
_ENCODING = re.compile(r"""\bencoding\s*=\s*["']([^"']*)["']""", re.IGNORECASE)
_ROOT_ALTTEXT = re.compile(r"""^\s*<(?:\w+:)?math\b[^>]*?\balttext\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)


def _unescape(text: str) -> str:
    return html_lib.unescape(text) if _ENTITY in text else text


def _attributes(source: str) -> dict[str, str]:
    if not source.strip(" /"):
        return {}
    return {
        match.group(1).lower(): _unescape(match.group(2) or match.group(3) or match.group(4) or "")
        for match in _ATTRIBUTE.finditer(source)
    }


def parse_mathml(markup: str) -> MathNode | None:
    """The first `<math>` element of `markup`, or a `<math>` wrapping a fragment that has none.

    Tolerant of tag soup: an end tag closes up to its open element, an end tag nothing opened is ignored.
    """
    root = MathNode("#root", {})
    stack = [root]
    nodes = skipped = 0  # `skipped`: start tags beyond the limits whose end tags are still to come
    cut: MathNode | None = None  # the token that holds the text of markup cut at the limits
    for match in _MARKUP_TOKEN.finditer(markup):
        text = match.group("text")
        if text is not None:
            if skipped and text.strip():
                # Text inside cut markup would land in a row, where text is only whitespace between elements:
                # keep it as one token of the deepest kept element, so the formula keeps its symbols.
                parts = stack[-1].parts
                if cut is None or not parts or parts[-1] is not cut:
                    cut = MathNode("mn", {})  # written out as it is
                    parts.append(cut)
                cut.parts.append(_unescape(text))
            else:
                stack[-1].parts.append(_unescape(text))
            continue
        raw_tag = match.group("tag")
        if raw_tag is None:
            continue  # a comment, doctype or processing instruction
        name = raw_tag.rpartition(":")[2].lower()
        if match.group("end"):
            if skipped:
                skipped -= 1
                continue
            for depth in range(len(stack) - 1, 0, -1):
                if stack[depth].tag == name:
                    del stack[depth:]
                    break
            continue
        attrs = match.group("attrs")
        closed = attrs.endswith("/") or name in _VOID
        if len(stack) > MAX_DEPTH or nodes >= MAX_NODES:
            skipped += not closed
            continue
        node = MathNode(name, _attributes(attrs))
        nodes += 1
        stack[-1].parts.append(node)
        if not closed:
            stack.append(node)
    math = next(root.descendants("math"), None)
    if math is None and root.elements:
        math = MathNode("math", {})
        math.parts = root.parts
    return math


def _source_in_markup(markup: str) -> str | None:
    """The TeX annotation, else the root's `alttext`, read straight from the markup."""
    for match in _ANNOTATION.finditer(markup):
        encoding = _ENCODING.search(match.group(1))
        if encoding is not None and encoding.group(1).strip().lower() in TEX_ANNOTATION_ENCODINGS:
            return _unescape(match.group(2)).strip()
    alttext = _ROOT_ALTTEXT.match(markup)
    if alttext is not None:
        return _unescape(alttext.group(1) or alttext.group(2) or "").strip() or None
    return None


def _tex_annotation(node: MathNode) -> str | None:
    """The TeX source carried in an `<annotation encoding="application/x-tex">` below `node`, if any."""
    for annotation in node.descendants("annotation"):
        if (annotation.getattr("encoding") or "").strip().lower() in TEX_ANNOTATION_ENCODINGS:
            return annotation.text.strip()
    return None


MathInput = Union["DOMNode", str]


def mathml_to_latex(math: MathInput, *, prefer_source: bool = True) -> str:
    """Convert MathML to LaTeX (without `$` delimiters).

    `math` is a `<math>` element of a resiliparse tree, or MathML markup as a string.
    With `prefer_source`, a TeX annotation or an `alttext` attribute is returned instead of converting;
    without it, annotations are ignored and the presentation markup is converted.
    """
    markup = math if isinstance(math, str) else math.html
    if prefer_source:
        source = _source_in_markup(markup)
        if source is not None:
            return source
    root = parse_mathml(markup)
    if root is None:
        return ""
    if prefer_source:
        return _row(_children(root)).strip()
    token = _USE_ANNOTATIONS.set(False)
    try:
        return _row(_children(root)).strip()
    finally:
        _USE_ANNOTATIONS.reset(token)


def _tag(node: MathNode) -> str:
    return node.tag


def _children(node: MathNode) -> list[MathNode]:
    return node.elements


def join_tex(pieces: list[str]) -> str:
    """Concatenate TeX pieces, adding a space only where TeX needs one (after a control word)."""
    # `\alpha` followed by `x` must not become `\alphax`, and `x^n` followed by `y` reads better as `x^n y`.
    out: list[str] = []
    for piece in pieces:
        if not piece:
            continue
        if out and (
            (piece[0].isalpha() and _COMMAND_END.search(out[-1]))
            or (piece[0].isalnum() and _SHORT_SCRIPT_END.search(out[-1]))
        ):
            out.append(" ")
        out.append(piece)
    return "".join(out)


def _group(latex: str) -> str:
    """Brace an argument unless it is already one token (a character or a command)."""
    if len(latex) == 1 or (latex.startswith("\\") and _COMMAND_END.fullmatch(latex)):
        return latex
    return "{" + latex + "}"


def _symbols(text: str) -> str:
    out: list[str] = []
    for char in text:
        mapped = UNICODE_TO_LATEX.get(char)
        if mapped is None:
            mapped = _TEX_SPECIALS.get(char, r"\backslash" if char == "\\" else char)
        out.append(mapped)
    return join_tex(out)


def _token_text(node: MathNode) -> str:
    return node.text.strip()


def _mi(node: MathNode) -> str:
    text = _token_text(node)
    if not text:
        return ""
    variant = node.getattr("mathvariant") if node.hasattr("mathvariant") else None
    if len(text) > 1:
        if text in _FUNCTIONS:
            return "\\" + text
        if variant in _VARIANTS and variant != "normal":
            return f"{_VARIANTS[variant]}{{{_symbols(text)}}}"
        return f"\\operatorname{{{_symbols(text)}}}"
    latex = _symbols(text)
    # Upright is the default for symbols (`<mi mathvariant="normal">∞</mi>` is just \infty), and ℝ is
    # already \mathbb{R}: only letters and digits take a font command.
    if variant in _VARIANTS and text.isalnum() and not latex.startswith("\\mathbb"):
        if variant == "normal" and not ("a" <= text.lower() <= "z"):
            return latex
        return f"{_VARIANTS[variant]}{{{latex}}}"
    return latex


def _mo(node: MathNode) -> str:
    text = _token_text(node)
    if not text:
        # A bare non-breaking or thin space: keep the separation, not the glyph.
        return " " if node.text else ""
    if text in _FUNCTIONS:
        return "\\" + text
    if len(text) > 1 and text.isalpha():
        return f"\\operatorname{{{text}}}"
    return _symbols(text)


def _mtext(node: MathNode) -> str:
    text = node.text
    if not text.strip():
        return r"\ " if text else ""
    escaped = _TEXT_ESCAPE.sub(lambda m: "\\textbackslash{}" if m.group() == "\\" else "\\" + m.group(), text)
    return f"\\text{{{escaped}}}"


def _mspace(node: MathNode) -> str:
    if (node.getattr("linebreak") or "") == "newline":
        return r"\\"
    width = (node.getattr("width") or "").strip()
    match = _LENGTH.match(width)
    if width in _NAMED_SPACES:
        em = _NAMED_SPACES[width]
    elif match is not None:
        value = float(match.group(1))
        unit = match.group(2) or "px"
        em = value if unit == "em" else value / 2 if unit == "ex" else value / 18 if unit == "mu" else value / 16
    else:
        return ""
    if em >= 1.5:
        return r"\qquad"
    if em >= 0.8:
        return r"\quad"
    if em >= 0.25:
        return r"\;"
    if em > 0.1:
        return r"\,"
    return ""


def _frac(node: MathNode) -> str:
    parts = _children(node)
    if len(parts) != 2:
        return _row(parts)
    num, den = _convert(parts[0]), _convert(parts[1])
    if (node.getattr("bevelled") or "") == "true":
        return f"{_group(num)}/{_group(den)}"
    if _zero_thickness(node):
        return rf"\genfrac{{}}{{}}{{0pt}}{{}}{{{num}}}{{{den}}}"
    return rf"\frac{{{num}}}{{{den}}}"


def _zero_thickness(node: MathNode) -> bool:
    thickness = (node.getattr("linethickness") or "").strip() if node.hasattr("linethickness") else ""
    match = _LENGTH.match(thickness)
    return match is not None and float(match.group(1)) == 0


def _scripts(node: MathNode, tag: str) -> str:
    parts = _children(node)
    # The base is converted only once its scripts are there: a script element short of them is a row, and
    # converting its base for nothing first doubled the work at every level of nesting (a fuzzed page with 100
    # nested `<msup>` of one child each ran for minutes).
    if tag == "msub" and len(parts) >= 2:
        return f"{_base(parts[0])}_{_group(_convert(parts[1]))}"
    if tag == "msup" and len(parts) >= 2:
        return _base(parts[0]) + _superscript(parts[1])
    if tag == "msubsup" and len(parts) >= 3:
        return f"{_base(parts[0])}_{_group(_convert(parts[1]))}{_superscript(parts[2])}"
    return _row(parts)


def _superscript(node: MathNode) -> str:
    latex = _convert(node)
    # Primes are written f' in TeX, not f^{\prime}.
    if latex and set(latex) == {"'"}:
        return latex
    return "^" + _group(latex)


def _base(node: MathNode) -> str:
    latex = _convert(node)
    tag = _tag(node)
    if tag in ("mi", "mn", "mo", "mtext") or len(latex) == 1 or _COMMAND_END.fullmatch(latex):
        return latex
    if latex.startswith("\\") and latex.endswith("}") and _single_command_group(latex):
        return latex
    return "{" + latex + "}"


def _single_command_group(latex: str) -> bool:
    # `\mathbf{x}` or `\frac{a}{b}` is one group already; `a+b` or `\alpha+1` is not.
    depth = 0
    for index, char in enumerate(latex):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif depth == 0 and index > 0 and not char.isalpha():
            return False
    return True


def _under_over(node: MathNode, tag: str) -> str:
    parts = _children(node)
    if len(parts) < 2:
        return _row(parts)
    base_node = parts[0]
    base = _convert(base_node)
    under = over = None
    if tag == "mover":
        over = parts[1]
    else:  # munder, or munderover, which may lack its overscript (seen in a fuzzed page)
        under = parts[1]
        if tag == "munderover" and len(parts) >= 3:
            over = parts[2]
    if base in _LIMIT_OPERATORS or base.startswith(r"\operatorname"):
        out = base
        if under is not None:
            out += "_" + _group(_convert(under))
        if over is not None:
            out += "^" + _group(_convert(over))
        return out
    if over is not None and under is None:
        accent = _OVER_ACCENTS.get(_token_text(over)) if _tag(over) in ("mo", "mi", "mtext") else None
        if accent is not None:
            # \vec{v} and \vec{\mathbf{B}}, but \overrightarrow{AB}: one symbol or a wide base.
            inner = _unwrap(base_node)
            single = (_tag(inner) in ("mi", "mn", "mo") and len(_token_text(inner)) == 1) or len(base) == 1
            single = single or bool(_COMMAND_END.fullmatch(base))
            return f"{accent[0] if single else accent[1]}{{{base}}}"
        return rf"\overset{{{_convert(over)}}}{{{base}}}"
    if under is not None and over is None:
        accent_under = _UNDER_ACCENTS.get(_token_text(under)) if _tag(under) in ("mo", "mi", "mtext") else None
        if accent_under is not None:
            return f"{accent_under}{{{base}}}"
        return rf"\underset{{{_convert(under)}}}{{{base}}}"
    assert under is not None and over is not None
    return rf"\overset{{{_convert(over)}}}{{\underset{{{_convert(under)}}}{{{base}}}}}"


def _fenced(node: MathNode) -> str:
    open_ = node.getattr("open") if node.hasattr("open") else "("
    close = node.getattr("close") if node.hasattr("close") else ")"
    separators = (node.getattr("separators") if node.hasattr("separators") else ",") or ""
    separators = "".join(separators.split())
    items: list[str] = []
    for index, child in enumerate(_children(node)):
        if index and separators:
            items.append(separators[min(index - 1, len(separators) - 1)])
        items.append(_convert(child))
    return _fence(open_ or "") + join_tex(items) + _fence(close or "")


def _fence(char: str) -> str:
    return _FENCES.get(char, UNICODE_TO_LATEX.get(char, char))


def _table(node: MathNode) -> str:
    rows: list[str] = []
    for row in _children(node):
        row_tag = _tag(row)
        if row_tag not in ("mtr", "mlabeledtr"):
            rows.append(_convert(row))
            continue
        cells = _children(row)
        if row_tag == "mlabeledtr" and cells:
            cells = cells[1:]  # the first cell is the equation label, e.g. "(1)"
        rows.append(" & ".join(_row(_children(cell)) if _tag(cell) == "mtd" else _convert(cell) for cell in cells))
    body = r" \\ ".join(rows)
    # Explicit column alignment (aligned equations, case splits) survives as an array column spec.
    aligns = (node.getattr("columnalign") or "").split() if node.hasattr("columnalign") else []
    spec = "".join(_ALIGN.get(align, "c") for align in aligns)
    if spec and spec.strip("c"):
        width = max((row.count(" & ") + 1 for row in rows), default=1)
        spec = (spec + spec[-1] * width)[:width]
        return rf"\begin{{array}}{{{spec}}}{body}\end{{array}}"
    return rf"\begin{{matrix}}{body}\end{{matrix}}"


def _enclose(node: MathNode) -> str:
    inner = _row(_children(node))
    notation = set((node.getattr("notation") or "longdiv").split())
    if notation & {"updiagonalstrike", "downdiagonalstrike", "horizontalstrike"}:
        return rf"\cancel{{{inner}}}"
    if notation & {"box", "roundedbox", "circle"}:
        return rf"\boxed{{{inner}}}"
    if "radical" in notation:
        return rf"\sqrt{{{inner}}}"
    if "top" in notation:
        return rf"\overline{{{inner}}}"
    if "bottom" in notation:
        return rf"\underline{{{inner}}}"
    return inner


def _multiscripts(node: MathNode) -> str:
    parts = _children(node)
    if not parts:
        return ""
    base = _base(parts[0])
    post: list[MathNode] = []
    pre: list[MathNode] = []
    target = post
    for part in parts[1:]:
        if _tag(part) == "mprescripts":
            target = pre
            continue
        target.append(part)

    def attach(scripts: list[MathNode]) -> str:
        out = ""
        for index in range(0, len(scripts) - 1, 2):
            sub, sup = scripts[index], scripts[index + 1]
            if _tag(sub) != "none":
                out += "_" + _group(_convert(sub))
            if _tag(sup) != "none":
                out += "^" + _group(_convert(sup))
        return out

    prefix = "{}" + attach(pre) if pre else ""
    return prefix + base + attach(post)


def _semantics(node: MathNode) -> str:
    source = _tex_annotation(node) if _USE_ANNOTATIONS.get() else None
    if source is not None:
        return source
    parts = [child for child in _children(node) if _tag(child) not in ("annotation", "annotation-xml")]
    return _convert(parts[0]) if parts else ""


def _unwrap(node: MathNode) -> MathNode:
    """`node` without single-child mrow wrappers (MathJax's TeXAtom ORD/OPEN/CLOSE groups)."""
    while _tag(node) == "mrow":
        children = _children(node)
        if len(children) != 1:
            break
        node = children[0]
    return node


def _fence_text(node: MathNode) -> str | None:
    node = _unwrap(node)
    return _token_text(node) if _tag(node) == "mo" else None


def _row(nodes: list[MathNode]) -> str:
    # `( mfrac[linethickness=0] )` is how MathJax and others write \binom.
    pieces: list[str] = []
    index = 0
    while index < len(nodes):
        node = nodes[index]
        if (
            index + 2 < len(nodes)
            and _tag(nodes[index + 1]) == "mfrac"
            and _zero_thickness(nodes[index + 1])
            and _fence_text(node) == "("
            and _fence_text(nodes[index + 2]) == ")"
        ):
            parts = _children(nodes[index + 1])
            if len(parts) == 2:
                pieces.append(rf"\binom{{{_convert(parts[0])}}}{{{_convert(parts[1])}}}")
                index += 3
                continue
        pieces.append(_convert(node))
        index += 1
    return join_tex(pieces)


def _convert(node: MathNode) -> str:
    tag = _tag(node)
    if tag == "mi":
        return _mi(node)
    if tag == "mn":
        return _symbols(_token_text(node))
    if tag == "mo":
        return _mo(node)
    if tag == "mtext":
        return _mtext(node)
    if tag == "ms":
        return _mtext(node)
    if tag == "mspace":
        return _mspace(node)
    if tag in ("math", "mrow", "mstyle", "mpadded", "merror", "mtd", "mprescripts"):
        return _row(_children(node))
    if tag == "mphantom":
        return rf"\phantom{{{_row(_children(node))}}}"
    if tag == "mfrac":
        return _frac(node)
    if tag == "msqrt":
        return rf"\sqrt{{{_row(_children(node))}}}"
    if tag == "mroot":
        parts = _children(node)
        if len(parts) == 2:
            return rf"\sqrt[{_convert(parts[1])}]{{{_convert(parts[0])}}}"
        return rf"\sqrt{{{_row(parts)}}}"
    if tag in ("msup", "msub", "msubsup"):
        return _scripts(node, tag)
    if tag in ("munder", "mover", "munderover"):
        return _under_over(node, tag)
    if tag == "mfenced":
        return _fenced(node)
    if tag == "mtable":
        return _table(node)
    if tag == "menclose":
        return _enclose(node)
    if tag == "mmultiscripts":
        return _multiscripts(node)
    if tag == "semantics":
        return _semantics(node)
    if tag == "maction":
        parts = _children(node)
        return _convert(parts[0]) if parts else ""
    if tag in ("annotation", "annotation-xml", "none", "malignmark", "maligngroup"):
        return ""
    if tag == "mglyph":
        return node.getattr("alt") or ""
    # Unknown or HTML content embedded in MathML: keep its text.
    return _symbols(node.text.strip())
