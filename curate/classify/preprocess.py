"""The one text normalisation the math classifier sees, at training and at scoring time alike.

fastText splits on whitespace only, so without this step `\\frac{a}{b}` is a single rare word and `$x$,`
never matches `$x$`. Splitting LaTeX commands, braces, operators and digits into their own tokens lets
the model learn from the markup itself (DeepSeekMath §2.1 relies on the classifier recognising math
notation, not just math vocabulary).
"""

from __future__ import annotations

import re
from typing import Any

PREPROCESS_VERSION = "mathtext_v1"
# Enough text to judge a page: math pages show notation within the first few thousand characters, and
# scoring cost grows linearly with length, so a 1 MB page must not cost 100x a typical one.
DEFAULT_MAX_CHARS = 20_000

# Order matters: a LaTeX command before a word, so `\frac` stays one token and keeps its backslash;
# digits apart from letters, so `3x` and `3y` share the token `3`; any other visible character alone.
_TOKEN = re.compile(r"\\[a-z]+|\\.|\d+|[^\W\d_]+|\S")


def preprocess(text: str | None, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """Lowercased, whitespace-folded, one line, LaTeX and operators split into space-separated tokens."""
    if not text:
        return ""
    return " ".join(_TOKEN.findall(text[:max_chars].lower()))


def preprocess_config(max_chars: int = DEFAULT_MAX_CHARS) -> dict[str, Any]:
    """Recorded in the model manifest so the scorer applies exactly what training applied."""
    return {"version": PREPROCESS_VERSION, "max_chars": max_chars}
