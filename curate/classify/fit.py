"""Fitting fastText to the data it is given: the paper's preset, and settings chosen on held-out sources.

DeepSeekMath's settings (dim 256, lr 0.1, wordNgrams 3, minCount 3, 3 epochs; §2.1) were chosen for ~500K
examples per class. On a seed of a few thousand, 3 epochs barely move the model: every score stays within a
few hundredths of 0.5. In `auto` mode the given settings and a small fixed grid of word n-grams, epochs and
learning rates are each trained with one positive source held out (`curate.classify.held_out`), and the
setting that ranks the held-out source's texts best is kept: a crawl is made of sources the seed never
saw, and a split of the seed's own sources rewards memorising them. With a single source the fallback is
the in-source check: a degenerate preset (scores that do not spread) is replaced by the epochs/lr with the
lowest validation log-loss. Grids are bounded by epochs, not by wall time: a wall-clock budget would make
the chosen model, and so `model_id`, depend on how busy the machine was.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from curate.classify.metrics import log_loss, roc_auc, score_spread
from curate.classify.model import math_probabilities
from curate.errors import ConfigError, CurateError

if TYPE_CHECKING:
    from curate.classify.held_out import FoldScores, SourceFolds

log = logging.getLogger(__name__)

# (wordNgrams, epoch, lr) tried after the given settings on held-out sources. Word n-grams are a choice too:
# on a seed of a few thousand texts, word trigrams mostly memorise one source's phrasing (measured on the
# shared data: held-out-source ROC-AUC 0.916 with trigrams, 0.921 with unigrams, same epochs).
HELD_OUT_GRID: tuple[tuple[int, int, float], ...] = (
    (1, 10, 0.5),
    (1, 25, 0.5),
    (2, 10, 0.5),
    (3, 10, 0.5),
    (3, 25, 0.5),
)
# (epoch, lr) candidates when the preset underfits and no source can be held out, cheapest first.
TUNE_GRID: tuple[tuple[int, float], ...] = ((10, 0.1), (10, 0.5), (25, 0.5))
# Validation scores whose 5th-95th percentile range is narrower than this do not separate anything usable:
# the paper's settings on ~2k examples give about 0.05.
DEGENERATE_SPREAD = 0.2
DEFAULT_MAX_TUNE_EPOCHS = 50
FIT_MODES = ("auto", "paper")


@dataclass(frozen=True)
class FastTextParams:
    dim: int = 256
    lr: float = 0.1
    word_ngrams: int = 3
    min_count: int = 3
    epoch: int = 3
    bucket: int = 2_000_000
    seed: int = 0
    thread: int = 1

    def to_fasttext(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "lr": self.lr,
            "wordNgrams": self.word_ngrams,
            "minCount": self.min_count,
            "epoch": self.epoch,
            "bucket": self.bucket,
            "seed": self.seed,
            "thread": self.thread,
            "loss": "softmax",
        }


# DeepSeekMath §2.1, for seeds of paper scale (hundreds of thousands of examples per class).
PAPER_PRESET = FastTextParams()

_M_PERTURB = -6  # glibc mallopt parameter


@contextmanager
def _zero_filled_allocations() -> Iterator[None]:
    """Make memory fastText allocates start as zeros, which its input matrix silently relies on.

    fastText's `DenseMatrix::uniform` fills the matrix in ten blocks, one per training thread, so with
    fewer than ten threads most rows keep whatever the allocator returns, and fasttext-numpy2-wheel 0.9.2
    does not zero that memory. Reused heap memory holds garbage (values near 1e15 were seen here), and
    training then hits "Encountered NaN" or yields a different model for the same seed (NOTES-deps P6 is
    this, not toy data). glibc's M_PERTURB fills every allocation with the complement of the byte given,
    so 0xFF means zeros: upstream's behaviour, where the matrix is a zeroed vector. Only for this call.
    """
    libc = None
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6")
        except OSError:
            log.warning("not glibc: fastText's partly uninitialised input matrix may make training non-reproducible")
    if libc is None:
        yield
        return
    libc.mallopt(_M_PERTURB, 0xFF)
    try:
        yield
    finally:
        libc.mallopt(_M_PERTURB, 0)


def train_fasttext(train_file: Path, params: FastTextParams) -> Any:
    import fasttext

    try:
        with _zero_filled_allocations():
            return fasttext.train_supervised(input=str(train_file), verbose=0, **params.to_fasttext())
    except RuntimeError as exc:
        raise CurateError(
            f"fastText training failed ({exc}): the loss diverged; lower lr or add training data"
        ) from exc


def score_summary(labels: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """How well validation scores fit: log-loss (lower is better), spread, ROC-AUC and the class medians."""
    labels = np.asarray(labels, dtype=bool)
    return {
        "log_loss": round(log_loss(labels, scores), 6),
        "spread": round(score_spread(scores), 6),
        "roc_auc": round(roc_auc(labels, scores), 6),
        "median_positive": round(float(np.median(scores[labels])), 6),
        "median_negative": round(float(np.median(scores[~labels])), 6),
    }


def is_degenerate(summary: dict[str, float]) -> bool:
    return summary["spread"] < DEGENERATE_SPREAD


@dataclass
class FitResult:
    model: Any
    params: FastTextParams
    record: dict[str, Any]  # written to the manifest under "fit"
    held_out: FoldScores | None = None  # the chosen settings' scores on held-out sources


def fit_model(
    train_file: Path,
    valid_texts: list[str],
    valid_labels: np.ndarray,
    params: FastTextParams,
    *,
    mode: str = "auto",
    max_tune_epochs: int = DEFAULT_MAX_TUNE_EPOCHS,
    folds: SourceFolds | None = None,
) -> FitResult:
    """Train `params`, or in `auto` mode the settings that rank held-out sources best (`folds`).

    Without a source to hold out, `auto` falls back to the in-source check: if the validation scores of
    `params` are degenerate, the epochs/lr grid is tried and the lowest validation log-loss kept.
    `max_tune_epochs` bounds the grid: no held-out candidate trains longer, and the fallback grid's epochs
    add up to at most that.
    """
    if mode not in FIT_MODES:
        raise ConfigError(f"train.fit must be one of {', '.join(FIT_MODES)}, got {mode!r}")
    if folds is not None and folds.sources:
        result = _fit_on_held_out_sources(train_file, params, mode, max_tune_epochs, folds)
    else:
        result = _fit_on_validation(train_file, valid_texts, valid_labels, params, mode, max_tune_epochs)
    summary = score_summary(valid_labels, math_probabilities(result.model, valid_texts))
    result.record["chosen"] = _candidate(result.params)
    result.record["validation"] = summary
    result.record["degenerate"] = is_degenerate(summary)
    if result.record["degenerate"]:
        log.warning(
            "DEGENERATE CLASSIFIER: validation scores spread only %.3f (epoch=%d lr=%g). Its scores do not separate "
            "math from other pages; add seed data%s",
            summary["spread"],
            result.params.epoch,
            result.params.lr,
            "" if mode == "auto" else ", or use train.fit=auto",
        )
    return result


def _fit_on_held_out_sources(
    train_file: Path, params: FastTextParams, mode: str, max_tune_epochs: int, folds: SourceFolds
) -> FitResult:
    candidates = [params]
    if mode == "auto":
        for word_ngrams, epoch, lr in HELD_OUT_GRID:
            candidate = replace(params, word_ngrams=word_ngrams, epoch=epoch, lr=lr)
            if candidate not in candidates and epoch <= max_tune_epochs:
                candidates.append(candidate)
    scored = [folds.score(candidate) for candidate in candidates]
    # The best mean ROC-AUC over the held-out sources, to three decimals (finer differences are one text
    # more or less), among the candidates whose scores spread: a degenerate model can rank well while every
    # score sits within a hair of 0.5, where a threshold is at the mercy of float32 ties. On a tie the
    # earlier, cheaper candidate stays.
    spread = [score_spread(fold.scores) >= DEGENERATE_SPREAD for fold in scored]
    best = max(range(len(scored)), key=lambda i: (spread[i], round(scored[i].mean_auc, 3), -i))
    chosen = scored[best]
    record: dict[str, Any] = {
        "mode": mode,
        "selected_on": "held_out_sources",
        "held_out_sources": folds.sources,
        "degenerate_spread_below": DEGENERATE_SPREAD,
        "candidates": [
            {
                **_candidate(fold.params),
                "held_out_roc_auc": round(fold.mean_auc, 6),
                **score_summary(fold.labels, fold.scores),
            }
            for fold in scored
        ],
        "tuned": chosen.params != params,
    }
    if record["tuned"]:
        log.info(
            "fastText settings chosen on held-out sources: wordNgrams %d, epoch %d, lr %g (ROC-AUC %.4f; the given "
            "settings %.4f)",
            chosen.params.word_ngrams,
            chosen.params.epoch,
            chosen.params.lr,
            chosen.mean_auc,
            scored[0].mean_auc,
        )
    return FitResult(train_fasttext(train_file, chosen.params), chosen.params, record, held_out=chosen)


def _fit_on_validation(
    train_file: Path,
    valid_texts: list[str],
    valid_labels: np.ndarray,
    params: FastTextParams,
    mode: str,
    max_tune_epochs: int,
) -> FitResult:
    model = train_fasttext(train_file, params)
    first = score_summary(valid_labels, math_probabilities(model, valid_texts))
    candidates = [{**_candidate(params), **first}]
    record: dict[str, Any] = {
        "mode": mode,
        "selected_on": "validation",
        "degenerate_spread_below": DEGENERATE_SPREAD,
        "candidates": candidates,
    }
    best, best_summary, best_params = model, first, params
    if mode == "auto" and is_degenerate(first):
        log.warning(
            "fastText with epoch=%d lr=%g underfits: validation scores spread only %.3f (median %.3f for math, "
            "%.3f for other); trying epochs/lr %s",
            params.epoch,
            params.lr,
            first["spread"],
            first["median_positive"],
            first["median_negative"],
            TUNE_GRID,
        )
        spent = 0
        for epoch, lr in TUNE_GRID:
            if spent + epoch > max_tune_epochs:
                record.setdefault("skipped_over_epoch_budget", []).append([epoch, lr])
                continue
            spent += epoch
            candidate_params = replace(params, epoch=epoch, lr=lr)
            candidate = train_fasttext(train_file, candidate_params)
            summary = score_summary(valid_labels, math_probabilities(candidate, valid_texts))
            candidates.append({**_candidate(candidate_params), **summary})
            # Lowest log-loss; on a tie the cheaper candidate (earlier in the grid) stays.
            if summary["log_loss"] < best_summary["log_loss"]:
                best, best_summary, best_params = candidate, summary, candidate_params
        record["tuned"] = True
    else:
        record["tuned"] = False
    return FitResult(best, best_params, record)


def _candidate(params: FastTextParams) -> dict[str, Any]:
    return {"word_ngrams": params.word_ngrams, "epoch": params.epoch, "lr": params.lr}
