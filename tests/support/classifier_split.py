"""The documented out-of-source split of the shared data for the math classifier (issue [3/7]).

Train on math text against web text; test on real math web pages against real non-math web pages. No test
source is trained on, so the ROC-AUC says how the classifier does on a crawl rather than on its seed.
"""

from __future__ import annotations

from pathlib import Path

from curate.classify.seed import SeedDoc, read_seed


def out_of_source_split(data: Path) -> tuple[list[Path], list[SeedDoc], list[Path], list[Path]]:
    """(train positives, train negatives, test math pages, test other pages).

    - train: positives math-text/ (StackMathQA, OpenStax Calculus), negatives web-text/ (DCLM, C4, RedPajama);
    - test: the llm-webkit `math_*` and ccmath HTML pages (29 math pages) against the article-extraction-benchmark
      and trafilatura pages (743 non-math pages), read through curate's HTML extraction.
    """
    positives = [data / "math-text/stackmathqa", data / "math-text/openstax-calculus"]
    negatives = list(read_seed(data / "web-text"))
    origin = data / "html/llm-webkit-bench/data/origin"
    test_math = [*sorted(origin.glob("math_*.html")), data / "html/llm-webkit-ccmath"]
    test_other = [data / "html/article-extraction-benchmark/html", data / "html/trafilatura-tests"]
    return positives, negatives, test_math, test_other
