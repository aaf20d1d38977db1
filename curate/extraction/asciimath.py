"""AsciiMath -> LaTeX.

AsciiMath (asciimath.org) is what `<script type="math/asciimath">` (MathJax) and pages loading ASCIIMathML.js
write between backticks: `x=(-b +- sqrt(b^2-4ac))/(2a)`. Its grammar is small:

    S ::= v | l E r | u S | b S S        simple: symbol, bracketed, unary or binary command
    I ::= S_S | S^S | S_S^S | S          scripts
    E ::= I E | I/I E                    a run; `/` makes a fraction

A symbol is the longest entry of `_SYMBOLS` that matches, else a number, else one character (so `ab` is
two variables). Brackets around a fraction part, a script or an argument are dropped, as AsciiMath does:
`(a+b)/2` is `\\frac{a+b}{2}`. A bracket of bracketed comma-separated rows of equal length is a matrix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from curate.extraction.mathml import join_tex

__all__ = ["MAX_DEPTH", "asciimath_to_latex"]

# Brackets and commands nested deeper than this are kept as symbols; each level costs a few stack frames.
MAX_DEPTH = 64

_GREEK = frozenset(
    {"alpha", "beta", "gamma", "Gamma", "delta", "Delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "Theta",
     "vartheta", "iota", "kappa", "lambda", "Lambda", "mu", "nu", "xi", "Xi", "pi", "Pi", "rho", "sigma", "Sigma",
     "tau", "upsilon", "phi", "Phi", "varphi", "chi", "psi", "Psi", "omega", "Omega"}
)  # fmt: skip

_CONSTANTS = {
    # operations
    "+": "+", "-": "-", "*": r"\cdot", "**": r"\ast", "***": r"\star", "//": "/", "\\\\": r"\backslash",
    "setminus": r"\setminus", "xx": r"\times", "-:": r"\div", "|><": r"\ltimes", "><|": r"\rtimes",
    "|><|": r"\bowtie", "@": r"\circ", "o+": r"\oplus", "ox": r"\otimes", "o.": r"\odot", "sum": r"\sum",
    "prod": r"\prod", "^^": r"\wedge", "^^^": r"\bigwedge", "vv": r"\vee", "vvv": r"\bigvee", "nn": r"\cap",
    "nnn": r"\bigcap", "uu": r"\cup", "uuu": r"\bigcup",
    # relations
    "=": "=", "!=": r"\neq", "<": "<", ">": ">", "<=": r"\leq", ">=": r"\geq", "lt": "<", "gt": ">",
    "le": r"\leq", "ge": r"\geq", "mlt": r"\ll", "mgt": r"\gg", "-<": r"\prec", ">-": r"\succ",
    "-<=": r"\preceq", ">-=": r"\succeq", "in": r"\in", "!in": r"\notin", "sub": r"\subset",
    "sup": r"\supset", "sube": r"\subseteq", "supe": r"\supseteq", "-=": r"\equiv", "~=": r"\cong",
    "~~": r"\approx", "~": r"\sim", "prop": r"\propto",
    # logic
    "and": r"\ \text{and}\ ", "or": r"\ \text{or}\ ", "not": r"\neg", "=>": r"\Rightarrow",
    "if": r"\ \text{if}\ ", "<=>": r"\Leftrightarrow", "AA": r"\forall", "EE": r"\exists", "_|_": r"\bot",
    "TT": r"\top", "|--": r"\vdash", "|==": r"\models",
    # miscellaneous
    "int": r"\int", "oint": r"\oint", "del": r"\partial", "grad": r"\nabla", "+-": r"\pm", "-+": r"\mp",
    "O/": r"\emptyset", "oo": r"\infty", "aleph": r"\aleph", ":.": r"\therefore", ":'": r"\because",
    "...": r"\ldots", "ldots": r"\ldots", "cdots": r"\cdots", "vdots": r"\vdots", "ddots": r"\ddots", "\\ ": r"\ ",
    "quad": r"\quad", "qquad": r"\qquad", "/_": r"\angle", "frown": r"\frown", "/_\\": r"\triangle",
    "diamond": r"\diamond", "square": r"\square", "|__": r"\lfloor", "__|": r"\rfloor", "|~": r"\lceil",
    "~|": r"\rceil", "CC": r"\mathbb{C}", "NN": r"\mathbb{N}", "QQ": r"\mathbb{Q}", "RR": r"\mathbb{R}",
    "ZZ": r"\mathbb{Z}", "dx": r"\mathrm{d}x", "dy": r"\mathrm{d}y", "dz": r"\mathrm{d}z", "dt": r"\mathrm{d}t",
    # arrows
    "uarr": r"\uparrow", "darr": r"\downarrow", "rarr": r"\rightarrow", "->": r"\to", ">->": r"\rightarrowtail",
    "->>": r"\twoheadrightarrow", "|->": r"\mapsto", "larr": r"\leftarrow", "harr": r"\leftrightarrow",
    "rArr": r"\Rightarrow", "lArr": r"\Leftarrow", "hArr": r"\Leftrightarrow",
    # characters TeX treats specially
    "{": r"\{", "}": r"\}", "%": r"\%", "#": r"\#", "&": r"\&", "$": r"\$", "'": "'", "!": "!",
}  # fmt: skip
_FUNCTIONS = frozenset(
    {"sin", "cos", "tan", "sec", "csc", "cot", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "sech", "csch",
     "coth", "exp", "log", "ln", "det", "dim", "mod", "gcd", "lcm", "lub", "glb", "min", "max", "lim", "Lim"}
)  # fmt: skip
_TEX_FUNCTIONS = frozenset({"sin", "cos", "tan", "sec", "csc", "cot", "arcsin", "arccos", "arctan", "sinh", "cosh",
                            "tanh", "coth", "exp", "log", "ln", "det", "dim", "gcd", "min", "max", "lim"})  # fmt: skip
_UNARY = {
    "sqrt": r"\sqrt", "hat": r"\hat", "bar": r"\overline", "ul": r"\underline", "vec": r"\vec", "dot": r"\dot",
    "ddot": r"\ddot", "tilde": r"\tilde", "ubrace": r"\underbrace", "obrace": r"\overbrace", "cancel": r"\cancel",
    "bb": r"\mathbf", "bbb": r"\mathbb", "cc": r"\mathcal", "tt": r"\mathtt", "fr": r"\mathfrak", "sf": r"\mathsf",
    "abs": "|", "floor": "floor", "ceil": "ceil", "norm": r"\|",
}  # fmt: skip
_BINARY = {"frac": r"\frac", "root": r"\sqrt", "stackrel": r"\stackrel", "overset": r"\overset",
           "underset": r"\underset", "color": r"\color"}  # fmt: skip
_LEFT = {"(": "(", "[": "[", "{": r"\{", "(:": r"\langle", "<<": r"\langle", "{:": "", "|:": "|"}
_RIGHT = {")": ")", "]": "]", "}": r"\}", ":)": r"\rangle", ">>": r"\rangle", ":}": "", ":|": "|"}
_STRIPPED = frozenset({"(", "[", r"\{", ""})  # brackets AsciiMath drops around an argument

_KIND: dict[str, str] = {}
for _name in _CONSTANTS:
    _KIND[_name] = "const"
for _name in _GREEK:
    _KIND[_name] = "const"
for _name in _FUNCTIONS:
    _KIND[_name] = "const"
for _name in _UNARY:
    _KIND[_name] = "unary"
for _name in _BINARY:
    _KIND[_name] = "binary"
for _name in ("text", "mbox"):
    _KIND[_name] = "text"
for _name in _LEFT:
    _KIND[_name] = "left"
for _name in _RIGHT:
    _KIND[_name] = "right"
for _name in ("/", "_", "^"):
    _KIND[_name] = "infix"
_KIND["|"] = "const"
_MAX_SYMBOL = max(map(len, _KIND))
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _tex_of(name: str) -> str:
    if name in _CONSTANTS:
        return _CONSTANTS[name]
    if name in _GREEK:
        return "\\" + name
    if name in _FUNCTIONS:
        return "\\" + name if name in _TEX_FUNCTIONS else rf"\operatorname{{{name}}}"
    return name


@dataclass(slots=True)
class _Token:
    kind: str  # const, left, right, unary, binary, infix, text
    name: str


@dataclass(slots=True)
class _Node:
    """A parsed simple expression: a TeX string, or a bracket group that may still lose its brackets."""

    tex: str = ""
    open: str | None = None
    close: str = ""
    items: list[_Node] = field(default_factory=list)

    def render(self) -> str:
        if self.open is None:
            return self.tex
        matrix = _matrix(self)
        if matrix is not None:
            return matrix
        inner = join_tex([item.render() for item in self.items])
        if not self.open and not self.close:
            return inner
        return join_tex([_left(self.open), inner, _right(self.close)])

    def bare(self) -> str:
        """Rendered without the outer brackets when AsciiMath would drop them."""
        stripped = self.open is not None and self.open in _STRIPPED and self.close in (")", "]", r"\}", "")
        if stripped and _matrix(self) is None:
            return join_tex([item.render() for item in self.items])
        return self.render()


def _left(bracket: str) -> str:
    return r"\left" + bracket if bracket else r"\left."


def _right(bracket: str) -> str:
    return r"\right" + bracket if bracket else r"\right."


def _tokenize(source: str) -> list[_Token]:
    tokens: list[_Token] = []
    index = 0
    while index < len(source):
        char = source[index]
        if char.isspace():
            index += 1
            continue
        if char == '"':
            end = source.find('"', index + 1)
            end = len(source) if end < 0 else end
            tokens.append(_Token("text", source[index + 1 : end]))
            index = end + 1
            continue
        number = _NUMBER.match(source, index)
        if number is not None:
            tokens.append(_Token("const", number.group()))
            index = number.end()
            continue
        # Longest match first, so `int`, `sin` and `min` are never read as the relation `in`.
        for size in range(min(_MAX_SYMBOL, len(source) - index), 0, -1):
            name = source[index : index + size]
            kind = _KIND.get(name)
            if kind is None:
                continue
            if kind == "text":
                # `text(..)` keeps its content verbatim; a bare `text` is just four variables.
                if source.startswith("(", index + size):
                    end = source.find(")", index + size)
                    end = len(source) if end < 0 else end
                    tokens.append(_Token("text", source[index + size + 1 : end]))
                    index = end + 1
                    break
                continue
            tokens.append(_Token(kind, name))
            index += size
            break
        else:
            tokens.append(_Token("const", char))
            index += 1
    return tokens


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def expression(self, inside: bool) -> list[_Node]:
        nodes: list[_Node] = []
        while (token := self.peek()) is not None:
            if token.kind == "right" and inside:
                break
            if token.kind == "right":
                self.pos += 1
                nodes.append(_Node(tex=_RIGHT[token.name] or ""))
                continue
            node = self.intermediate()
            following = self.peek()
            if following is not None and following.kind == "infix" and following.name == "/":
                self.pos += 1
                denominator = self.intermediate()
                node = _Node(tex=rf"\frac{{{node.bare()}}}{{{denominator.bare()}}}")
            nodes.append(node)
        return nodes

    def intermediate(self) -> _Node:
        base = self.simple()
        token = self.peek()
        if token is None or token.kind != "infix" or token.name == "/":
            return base
        # A script on a bracket group applies to the whole group, as in AsciiMath's own MathML.
        tex = "{" + base.render() + "}" if base.open is not None else base.render()
        for mark in ("_", "^"):
            token = self.peek()
            if token is not None and token.kind == "infix" and token.name == mark:
                self.pos += 1
                script = self.simple().bare()
                tex += mark + (script if len(script) == 1 else "{" + script + "}")
        return _Node(tex=tex)

    def simple(self) -> _Node:
        token = self.peek()
        if token is None:
            return _Node(tex="")
        self.pos += 1
        if token.kind in ("left", "unary", "binary"):
            if self.depth >= MAX_DEPTH:
                # Hostile input (`sqrt ` 3,000 times) must not exhaust the recursion limit: beyond the
                # depth any real formula reaches, commands and brackets are kept as plain symbols.
                return _Node(tex=token.name)
            self.depth += 1
            try:
                return self._nested(token)
            finally:
                self.depth -= 1
        if token.kind == "const":
            return _Node(tex=_tex_of(token.name))
        if token.kind == "text":
            return _Node(tex=rf"\text{{{token.name}}}")
        # A stray infix or right bracket: keep it as a symbol.
        return _Node(tex=_RIGHT.get(token.name, token.name) or token.name)

    def _nested(self, token: _Token) -> _Node:
        if token.kind == "left":
            items = self.expression(inside=True)
            close = self.peek()
            closing = ""
            if close is not None and close.kind == "right":
                self.pos += 1
                closing = _RIGHT[close.name]
            return _Node(open=_LEFT[token.name], close=closing, items=items)
        if token.kind == "unary":
            argument = self.simple().bare()
            command = _UNARY[token.name]
            if command == "|":
                return _Node(tex=rf"\left|{argument}\right|")
            if command == r"\|":
                return _Node(tex=rf"\left\|{argument}\right\|")
            if command in ("floor", "ceil"):
                return _Node(tex=rf"\left\l{command} {argument}\right\r{command}")
            return _Node(tex=f"{command}{{{argument}}}")
        if token.kind == "binary":
            first = self.simple().bare()
            second = self.simple().bare()
            command = _BINARY[token.name]
            if command == r"\sqrt":
                return _Node(tex=rf"\sqrt[{first}]{{{second}}}")
            return _Node(tex=f"{command}{{{first}}}{{{second}}}")
        raise ValueError(f"not a nesting token: {token.kind}")


def _split_commas(items: list[_Node]) -> list[list[_Node]]:
    parts: list[list[_Node]] = [[]]
    for item in items:
        if item.open is None and item.tex == ",":
            parts.append([])
        else:
            parts[-1].append(item)
    return parts


def _matrix(node: _Node) -> str | None:
    """`[[a,b],[c,d]]` -> a matrix: rows are single bracket groups of the same kind and width."""
    parts = _split_commas(node.items)
    if len(parts) < 2 or any(len(part) != 1 or part[0].open is None for part in parts):
        return None
    rows = [part[0] for part in parts]
    if len({(row.open, row.close) for row in rows}) != 1:
        return None
    cells = [_split_commas(row.items) for row in rows]
    if len({len(row) for row in cells}) != 1:
        return None
    body = r" \\ ".join(" & ".join(join_tex([item.render() for item in cell]) for cell in row) for row in cells)
    return _left(node.open or "") + r"\begin{matrix}" + body + r"\end{matrix}" + _right(node.close)


def asciimath_to_latex(source: str) -> str:
    """Convert one AsciiMath formula (without its backticks) to LaTeX (without `$`)."""
    return join_tex([node.render() for node in _Parser(_tokenize(source)).expression(inside=False)])
