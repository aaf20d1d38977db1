"""Formula recall of an HTML -> text extractor against the llm-webkit math ground truth.

Ground truth (`html/llm-webkit-bench/data/groundtruth/math_*.jsonl`, one JSON object per file, the page in
`data/origin/<name>.html`): `content_list` is a list of pages, each a list of blocks. A display formula is a
block `{"type": "equation-interline", "content": {"math_content": TeX, "math_type": ..., "by": ...}}`; an
inline formula is an item `{"t": "equation-inline", "c": TeX}` inside the `content` list of a `paragraph` (or
list item, table cell) block. The flat `content` string repeats them as `$..$` / `$$..$$`, but with markdown
escaping mixed in, so we read `content_list`. All ground-truth formulas are TeX: llm-webkit converted MathML
and AsciiMath to TeX itself (`math_type` records the original), and kept MathJax/KaTeX sources verbatim.
The 23 pages hold 1,026 formulas; `math_katex_latex_2` and `math_stackexchange_1` hold none.

Matching. A formula counts as found when it appears inside a TeX span of the extracted text
(`$..$`, `$$..$$`, `\\(..\\)`, `\\[..\\]`, `\\begin{env}..\\end{env}`; see `iter_math_spans`): math that
survives only as undelimited text (a MathML rendering flattened to `x2+1`) is not usable as math, so it does
not count. Both sides are normalised by `normalize_tex`. A formula of 4 or more normalised characters may
sit inside a longer span (the ground truth and a page may segment a display block differently); a shorter
one (`x`, `n`, `2a`) must equal a whole span, or every `x` anywhere in any formula would match. Counts are
multisets: a formula that occurs k times in the ground truth needs k occurrences.

`normalize_tex` removes only what does not change the mathematics a reader sees:
- HTML entities are decoded and `<br />` tags dropped (llm-webkit copied them from image alt texts into
  a few formulas of the mathhelpforum pages); Unicode symbols become the TeX commands MathML conversion
  uses (`≤` -> `\\leq`, `α` -> `\\alpha`, `−` -> `-`), and a few command synonyms are unified
  (`\\le`/`\\leq`, `\\to`/`\\rightarrow`, `\\lt`/`<`, `\\dfrac`/`\\frac`);
- sizing and style-only commands are dropped: `\\displaystyle`, `\\textstyle`, `\\left`, `\\right`, `\\big`
  and friends, and spacing (`\\,`, `\\;`, `\\!`, `\\quad`, `~`, `\\ `);
- all whitespace is removed; braces around a single token are dropped (`x^{2}` = `x^2`, `{\\alpha}` =
  `\\alpha`) and so are braces around the whole formula (Wikipedia's `{\\displaystyle ..}` wrapper);
- trailing sentence punctuation and trailing `\\\\` line breaks are dropped.
It does NOT unify fonts (`\\mathbf{x}` != `x`), `\\frac{a}{b}` vs `a/b`, `\\over` vs `\\frac`, or digits
grouping (`x^{12}` != `x^12`): those change what is rendered.
"""

from __future__ import annotations

import html as html_lib
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.extraction.math_html import iter_math_spans
from curate.extraction.mathml import UNICODE_TO_LATEX

__all__ = ["SHORT_FORMULA", "MathPage", "formula_recall", "load_formulas", "load_math_pages", "normalize_tex"]

BENCH_DIR = Path("html/llm-webkit-bench/data")
SHORT_FORMULA = 4  # normalised length below which a formula must equal a whole span


@dataclass(frozen=True, slots=True)
class MathPage:
    name: str  # e.g. "math_mathjax_latex_4"
    url: str
    html: str
    formulas: list[str]  # ground-truth TeX, display and inline, in page order


def load_formulas(record: dict[str, Any]) -> list[str]:
    """Ground-truth formulas of one llm-webkit record, from its `content_list`."""
    formulas: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            if node.get("type") == "equation-interline":
                content = node.get("content") or {}
                if content.get("math_content"):
                    formulas.append(content["math_content"])
            elif node.get("t") == "equation-inline" and node.get("c"):
                formulas.append(node["c"])
            for key, value in node.items():
                if key != "raw_content":  # HTML of the block, not structure
                    walk(value)

    walk(record.get("content_list", []))
    return formulas


def load_math_pages(shared_data: Path) -> list[MathPage]:
    """The llm-webkit-bench math pages (`math_*`) with their ground-truth formulas, sorted by name."""
    root = shared_data / BENCH_DIR
    pages = []
    for truth in sorted((root / "groundtruth").glob("math_*.jsonl")):
        record = json.loads(truth.read_text(encoding="utf-8").splitlines()[0])
        origin = root / "origin" / f"{truth.stem}.html"
        # The origin file is what was crawled; the record's own `html` field differs in line endings.
        html = origin.read_bytes().decode("utf-8", errors="replace")
        pages.append(MathPage(name=truth.stem, url=record["url"], html=html, formulas=load_formulas(record)))
    return pages


_SYNONYMS = {
    r"\le": r"\leq", r"\ge": r"\geq", r"\ne": r"\neq", r"\to": r"\rightarrow", r"\gets": r"\leftarrow",
    r"\lt": "<", r"\gt": ">", r"\dfrac": r"\frac", r"\tfrac": r"\frac", r"\lbrace": r"\{", r"\rbrace": r"\}",
    r"\lvert": "|", r"\rvert": "|", r"\vert": "|", r"\lVert": r"\|", r"\rVert": r"\|", r"\Vert": r"\|",
    r"\land": r"\wedge", r"\lor": r"\vee", r"\lnot": r"\neg", r"\dots": r"\ldots", r"\implies": r"\Longrightarrow",
    r"\iff": r"\Longleftrightarrow", r"\colon": ":", r"\vartriangle": r"\triangle",
}  # fmt: skip
_DROPPED_COMMANDS = frozenset(
    {"displaystyle", "textstyle", "scriptstyle", "scriptscriptstyle", "left", "right", "middle", "big", "Big",
     "bigg", "Bigg", "bigl", "Bigl", "biggl", "Biggl", "bigr", "Bigr", "biggr", "Biggr", "bigm", "Bigm", "quad",
     "qquad", "limits", "nolimits"}
)  # fmt: skip
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_COMMAND = re.compile(r"\\([A-Za-z]+)")
_SPACING = re.compile(r"\\\\|\\[,;:! ]|~")  # `\\` is matched only to be kept whole
_WHITESPACE = re.compile(r"\s+")
_SINGLE_TOKEN_GROUP = re.compile(r"\{(\\[A-Za-z]+|\\.|[^{}\\])\}")
_TRAILING = re.compile(r"(?:[.,;]|\\\\|\\)+$")
_UNICODE = re.compile("[" + re.escape("".join(UNICODE_TO_LATEX)) + "]")


def _command(match: re.Match[str]) -> str:
    name = match.group(1)
    if name in _DROPPED_COMMANDS:
        return " "
    full = "\\" + name
    return _SYNONYMS.get(full, full)


def _outer_group(tex: str) -> bool:
    if len(tex) < 2 or tex[0] != "{" or tex[-1] != "}":
        return False
    depth = 0
    for index, char in enumerate(tex):
        if char == "{" and (index == 0 or tex[index - 1] != "\\"):
            depth += 1
        elif char == "}" and tex[index - 1] != "\\":
            depth -= 1
            if depth == 0 and index != len(tex) - 1:
                return False
    return True


def normalize_tex(tex: str) -> str:
    """Canonical form of a TeX formula for matching (see the module docstring for what it unifies)."""
    tex = html_lib.unescape(_BR.sub(" ", tex))
    tex = _UNICODE.sub(lambda m: f" {UNICODE_TO_LATEX[m.group()]} ", tex)
    tex = _SPACING.sub(lambda m: m.group() if m.group() == "\\\\" else " ", tex)
    tex = _COMMAND.sub(_command, tex)
    # `\alpha x` becomes `\alphax`: ambiguous only with a command named `\alphax`, and both sides agree.
    tex = _WHITESPACE.sub("", tex)
    previous = None
    while previous != tex:
        previous = tex
        tex = _SINGLE_TOKEN_GROUP.sub(r"\1", tex)
        while _outer_group(tex):
            tex = tex[1:-1]
    return _TRAILING.sub("", tex)


def formula_recall(extracted_text: str, formulas: Iterable[str]) -> tuple[int, int]:
    """(found, total) ground-truth formulas in `extracted_text`; see the module docstring for the rule."""
    wanted = Counter(normalized for normalized in map(normalize_tex, formulas))
    wanted.pop("", None)
    total = sum(wanted.values())
    if not total:
        return 0, 0
    spans = [normalize_tex(span) for span in iter_math_spans(extracted_text)]
    whole = Counter(spans)
    joined = "\x01".join(spans)
    found = 0
    for formula, count in wanted.items():
        if len(formula) < SHORT_FORMULA:
            found += min(count, whole[formula])
        else:
            found += min(count, joined.count(formula))
    return found, total
