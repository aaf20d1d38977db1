"""AsciiMath -> LaTeX golden cases (the grammar of asciimath.org: symbols, brackets, scripts, fractions)."""

from __future__ import annotations

import pytest

from curate.extraction.asciimath import asciimath_to_latex

GOLDEN = [
    ("E=mc^2", "E=mc^2"),
    ("x=(-b +- sqrt(b^2 - 4ac))/(2a)", r"x=\frac{-b\pm\sqrt{b^2-4ac}}{2a}"),
    ("sum_(k=1)^n k", r"\sum_{k=1}^n k"),
    ("int_0^1 x^2 dx", r"\int_0^1 x^2\mathrm{d}x"),
    ("e^(x/2)", r"e^{\frac{x}{2}}"),
    ("(x+1)^2", r"{\left(x+1\right)}^2"),
    ("(x+1)/x^2", r"\frac{x+1}{x^2}"),
    ("dy/dx", r"\frac{\mathrm{d}y}{\mathrm{d}x}"),
    ("a_(nm) x_2^3", "a_{nm}x_2^3"),
    ("root(3)(x) sqrt x", r"\sqrt[3]{x}\sqrt{x}"),
    ("sin x + ln x", r"\sin x+\ln x"),
    ("alpha beta Sigma", r"\alpha\beta\Sigma"),
    ("2xx7 = 14 != 15", r"2\times7=14\neq15"),
    ("3 -: 4 <= 1", r"3\div4\leq1"),
    ("x in RR", r"x\in\mathbb{R}"),
    ("f @ g", r"f\circ g"),
    ("phi : A -> B", r"\phi:A\to B"),
    ("1, ldots, n", r"1,\ldots,n"),
    ("hat(ab) bar x vec v", r"\hat{ab}\overline{x}\vec{v}"),
    ("bb(x) bbb(R)", r"\mathbf{x}\mathbb{R}"),
    ('"area" = text(base) xx h', r"\text{area}=\text{base}\times h"),
    ("abs(x) floor(y)", r"\left|x\right|\left\lfloor y\right\rfloor"),
    ("(: a, b :)", r"\left\langle a,b\right\rangle"),
    ("[[1,2],[3,4]]", r"\left[\begin{matrix}1 & 2 \\ 3 & 4\end{matrix}\right]"),
    (
        "|x| = {(x, if x >= 0),(-x, if x < 0):}",
        r"|x|=\left\{\begin{matrix}x & \ \text{if}\ x\geq0 \\ -x & \ \text{if}\ x<0\end{matrix}\right.",
    ),
    ("(a, b)", r"\left(a,b\right)"),  # a pair is not a matrix
    ("x)", "x)"),  # unbalanced input still yields something
    ("", ""),
]


@pytest.mark.parametrize(("source", "latex"), GOLDEN, ids=[source or "empty" for source, _ in GOLDEN])
def test_golden(source: str, latex: str) -> None:
    assert asciimath_to_latex(source) == latex
