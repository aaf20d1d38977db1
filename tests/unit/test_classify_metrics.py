"""Threshold choice, score spread and labelled page reading (real HTML pages, a real WARC built with warcio)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.warcs import real_pages, write_warc

from curate.classify.labelled import read_labelled
from curate.classify.metrics import histogram, log_loss, score_spread, threshold_for_precision
from curate.errors import InputError


def test_threshold_takes_the_most_recall_at_the_target_precision() -> None:
    labels = np.array([1, 1, 0, 1, 0, 0], dtype=bool)
    scores = np.array([0.9, 0.8, 0.7, 0.3, 0.1, 0.05])
    strict = threshold_for_precision(labels, scores, 0.95)
    assert strict["threshold"] == 0.8 and strict["reached"] and strict["recall"] == pytest.approx(2 / 3)
    loose = threshold_for_precision(labels, scores, 0.7)
    assert loose["threshold"] == 0.3 and loose["precision"] == 0.75 and loose["recall"] == 1.0
    # Separable scores: every cut-off in [0.1, 0.6] keeps all positives at precision >= 0.5; the middle is taken.
    separable = threshold_for_precision(np.array([1, 1, 0, 0], dtype=bool), np.array([0.9, 0.6, 0.2, 0.1]), 0.5)
    assert separable["margin"] == [0.1, 0.6] and separable["threshold"] == pytest.approx(0.35)
    assert separable["precision"] == 1.0 and separable["recall"] == 1.0


def test_unreachable_target_returns_the_most_precise_cut_off() -> None:
    result = threshold_for_precision(np.array([0, 1, 1], dtype=bool), np.array([0.9, 0.8, 0.8]), 0.95)
    assert not result["reached"] and result["threshold"] == 0.8 and result["precision"] == pytest.approx(2 / 3)


def test_spread_and_log_loss_tell_an_underfit_model_apart() -> None:
    labels = np.array([1] * 50 + [0] * 50, dtype=bool)
    underfit = np.where(labels, 0.505, 0.495)
    fitted = np.where(labels, 0.97, 0.04)
    assert score_spread(underfit) < 0.02 < 0.9 < score_spread(fitted)
    assert log_loss(labels, fitted) < 0.1 < 0.6 < log_loss(labels, underfit)
    assert sum(histogram(fitted)["counts"]) == 100


def test_labelled_pages_from_html_files_and_a_warc(shared_data: Path, tmp_path: Path) -> None:
    ccmath = shared_data / "html/llm-webkit-ccmath"
    from_html = read_labelled([ccmath])
    assert len(from_html.texts) + sum(from_html.drops.values()) == len(list(ccmath.glob("*.html")))
    assert any("\\sigma" in t.text or "Var" in t.text for t in from_html.texts)
    pages = [p for p in real_pages(shared_data) if "ccmath" in str(p.source)]
    warc = tmp_path / "math.warc.gz"
    write_warc(pages, warc)
    from_warc = read_labelled([warc])
    assert len(from_warc.texts) + sum(from_warc.drops.values()) == len(pages)
    assert sorted(t.text for t in from_warc.texts) == sorted(t.text for t in from_html.texts)
    with pytest.raises(InputError):
        read_labelled([str(tmp_path / "none_*.html")])
