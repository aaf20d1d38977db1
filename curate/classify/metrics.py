"""Binary classification metrics for the held-out split, in numpy (no scikit-learn dependency)."""

from __future__ import annotations

from typing import Any

import numpy as np


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: the probability that a random positive outscores a random negative.

    Computed from average ranks (Mann-Whitney U), so tied scores count one half, as in the usual definition.
    """
    labels = np.asarray(labels, dtype=bool)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(np.asarray(scores, dtype=np.float64))
    u = ranks[labels].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # Each run of equal values gets the mean of the 1-based ranks it spans.
    boundaries = np.flatnonzero(np.diff(sorted_values)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [values.size]))
    run_ranks = (starts + ends + 1) / 2.0
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(run_ranks, ends - starts)
    return ranks


def precision_recall_f1(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    labels = np.asarray(labels, dtype=bool)
    predicted = np.asarray(scores) >= threshold
    tp = int(np.sum(predicted & labels))
    fp = int(np.sum(predicted & ~labels))
    fn = int(np.sum(~predicted & labels))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"threshold": threshold, "precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def pr_curve(labels: np.ndarray, scores: np.ndarray, points: int = 21) -> list[dict[str, float]]:
    """Precision and recall at evenly spaced thresholds in [0, 1]: enough to pick a `--min-score`."""
    return [
        {key: value for key, value in precision_recall_f1(labels, scores, float(t)).items() if key in _PR_KEYS}
        for t in np.round(np.linspace(0.0, 1.0, points), 6)
    ]


_PR_KEYS = ("threshold", "precision", "recall", "f1")


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the step-wise precision-recall curve over every distinct score."""
    labels = np.asarray(labels, dtype=bool)
    n_pos = int(labels.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")
    hits = labels[order]
    tp = np.cumsum(hits)
    precision_at_k = tp / np.arange(1, hits.size + 1)
    return float(np.sum(precision_at_k[hits]) / n_pos)


def evaluate(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    labels = np.asarray(labels, dtype=bool)
    at_threshold = precision_recall_f1(labels, scores, threshold)
    return {
        "n": int(labels.size),
        "n_positive": int(labels.sum()),
        **at_threshold,
        "roc_auc": roc_auc(labels, scores),
        "average_precision": average_precision(labels, scores),
        "pr_curve": pr_curve(labels, scores),
        "histogram": histogram(scores),
    }


def log_loss(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mean negative log-likelihood of the labels: low only when scores are both right and confident."""
    labels = np.asarray(labels, dtype=bool)
    p = np.clip(np.asarray(scores, dtype=np.float64), 1e-6, 1 - 1e-6)
    return float(-np.mean(np.where(labels, np.log(p), np.log(1 - p))))


def score_spread(scores: np.ndarray) -> float:
    """Width of the middle 90% of the scores; near 0 when a model says about the same thing for every text."""
    values = np.asarray(scores, dtype=np.float64)
    if values.size == 0:
        return 0.0
    low, high = np.percentile(values, [5, 95])
    return float(high - low)


def threshold_for_precision(labels: np.ndarray, scores: np.ndarray, target_precision: float) -> dict[str, Any]:
    """A score cut-off with the most recall among those whose precision reaches `target_precision`.

    Candidates are the distinct scores themselves, so the cut-off follows the model's own scale, however
    uncalibrated. When no cut-off reaches the target, the most precise one is returned with `reached` false.
    """
    labels = np.asarray(labels, dtype=bool)
    values = np.asarray(scores, dtype=np.float64)
    n_pos = int(labels.sum())
    if values.size == 0 or n_pos == 0:
        return {"threshold": None, "target_precision": target_precision, "reached": False}
    order = np.argsort(-values, kind="mergesort")
    sorted_scores, hits = values[order], labels[order]
    tp = np.cumsum(hits)
    kept = np.arange(1, values.size + 1)
    # Only the last position of each run of equal scores is a real cut-off (`>=` keeps the whole run).
    last_of_run = np.append(sorted_scores[1:] != sorted_scores[:-1], True)
    precision = np.where(last_of_run, tp / kept, -1.0)
    reaching = np.flatnonzero(precision >= target_precision)
    reached = reaching.size > 0
    margin: tuple[float, float] | None = None
    if reached:
        # The most recall at the target. Every cut-off from the highest to the lowest one giving that recall at
        # the target precision does as well on validation; the split is in-source, so pages from elsewhere
        # score less cleanly: cut in the middle of that margin rather than on either edge.
        best_tp = tp[reaching].max()
        best = reaching[tp[reaching] == best_tp]
        index = int(best[0])
        margin = (float(sorted_scores[best[-1]]), float(sorted_scores[best[0]]))
        cut = (margin[0] + margin[1]) / 2
    else:
        index = int(np.argmax(precision))
        cut = float(sorted_scores[index])
    at_cut = precision_recall_f1(labels, values, cut)
    return {
        "threshold": cut,
        "margin": list(margin) if margin else None,
        "target_precision": target_precision,
        "reached": bool(reached),
        "precision": at_cut["precision"],
        "recall": at_cut["recall"],
    }


def histogram(scores: np.ndarray, bins: int = 20) -> dict[str, list[Any]]:
    """Counts of scores in `bins` equal bins over [0, 1]."""
    counts, edges = np.histogram(np.clip(np.asarray(scores, dtype=np.float64), 0, 1), bins=bins, range=(0.0, 1.0))
    return {"edges": [round(float(e), 6) for e in edges], "counts": [int(c) for c in counts]}
