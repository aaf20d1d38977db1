"""Validation on sources the model never saw: the split that settings and threshold are chosen on.

A split of the training sources flatters a classifier (ROC-AUC 0.998 where unseen math web pages give 0.79):
texts of one source share templates and vocabulary, so the settings that win there are the ones that
memorise a source best. Here each eligible positive source in turn is left out of training, and the model
trained on the rest scores that source's texts against the validation negatives. Pooled over the folds,
those scores say how a model ranks, and where it puts, math it was not taught: the crawl's situation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curate.classify.examples import Example, write_fasttext_file
from curate.classify.fit import FastTextParams, score_summary, train_fasttext
from curate.classify.model import MATH_LABEL, OTHER_LABEL, math_probabilities

# A source of fewer texts says little about a model; more folds cost one training each.
MIN_HELD_OUT_SOURCE = 20
MAX_HELD_OUT_SOURCES = 3
MAX_HELD_OUT_SHARE = 0.5


def held_out_sources(positives: list[Example]) -> list[str]:
    """Positive sources to hold out one at a time: smallest first, at most three.

    A source needs 20 texts to say anything, and the rest of the positives must keep at least half of
    them: a fold trained on a sliver of the seed scores everything low, and its scores would drag the
    threshold read from the pooled folds far below where the final model, trained on all of it, puts math.
    With one source there is nothing to train on without it.
    """
    sizes: dict[str, int] = {}
    for example in positives:
        sizes[example.source] = sizes.get(example.source, 0) + 1
    total = sum(sizes.values())
    eligible = sorted(
        (n, name) for name, n in sizes.items() if n >= MIN_HELD_OUT_SOURCE and n <= total * MAX_HELD_OUT_SHARE
    )
    return [name for _, name in eligible[:MAX_HELD_OUT_SOURCES]]


@dataclass
class FoldScores:
    """Scores of every fold's held-out texts under one setting, pooled, with each fold's ROC-AUC."""

    params: FastTextParams
    labels: np.ndarray
    scores: np.ndarray
    per_source: dict[str, dict[str, Any]]

    @property
    def mean_auc(self) -> float:
        return float(np.mean([fold["roc_auc"] for fold in self.per_source.values()]))

    def record(self) -> dict[str, Any]:
        """What the manifest keeps under `out_of_source`."""
        return {
            "held_out_sources": list(self.per_source),
            "roc_auc": round(self.mean_auc, 6),
            "per_source": self.per_source,
            "n_positive": int(self.labels.sum()),
            "n_negative": int((~self.labels).sum()),
            "pooled": score_summary(self.labels, self.scores),
        }


@dataclass
class SourceFolds:
    train: list[Example]
    valid: list[Example]
    positives: list[Example]  # every positive, training and validation alike: a held-out source is held out whole
    sources: list[str]
    work: Path

    def score(self, params: FastTextParams) -> FoldScores:
        negatives = [e for e in self.valid if e.label == OTHER_LABEL]
        labels: list[np.ndarray] = []
        scores: list[np.ndarray] = []
        per_source: dict[str, dict[str, Any]] = {}
        for index, source in enumerate(self.sources):
            train_file = self.work / f"held-out-{index}.txt"
            write_fasttext_file(train_file, [e for e in self.train if e.source != source])
            model = train_fasttext(train_file, params)
            test = [e for e in self.positives if e.source == source] + negatives
            fold_labels = np.array([e.label == MATH_LABEL for e in test])
            fold_scores = math_probabilities(model, [e.text for e in test])
            per_source[source] = {"n_positive": int(fold_labels.sum()), **score_summary(fold_labels, fold_scores)}
            labels.append(fold_labels)
            scores.append(fold_scores)
        return FoldScores(params, np.concatenate(labels), np.concatenate(scores), per_source)
