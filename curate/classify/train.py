"""Training the fastText math classifier (DeepSeekMath §2.1, first iteration).

Examples come from `curate.classify.examples` (seed positives, sampled negatives, balanced classes). The
settings are chosen, and the selection threshold read, on positive sources held out of training
(`curate.classify.held_out`); the manifest records both, with the in-source validation metrics beside them.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from curate.classify.examples import load_positives, sample_negatives, split_examples, take, write_fasttext_file
from curate.classify.fit import DEFAULT_MAX_TUNE_EPOCHS, PAPER_PRESET, FastTextParams, fit_model
from curate.classify.held_out import FoldScores, SourceFolds, held_out_sources
from curate.classify.metrics import evaluate, threshold_for_precision
from curate.classify.model import MATH_LABEL, OTHER_LABEL, content_id, manifest_path_for, math_probabilities
from curate.classify.preprocess import DEFAULT_MAX_CHARS, preprocess_config
from curate.classify.seed import expand_paths
from curate.errors import ConfigError

log = logging.getLogger(__name__)

TRAINER_VERSION = "fasttext_math_train_v3"
# fastText's own default; with dim 256 it makes a ~2 GB model (NOTES-deps P7). Tests pass a small value.
DEFAULT_BUCKET = 2_000_000
DEFAULT_QUANTIZE_CUTOFF = 200_000
# Precision the selection threshold is chosen for on the validation PR curve (DeepSeekMath does not say; a
# corpus is better missing some math than full of non-math).
DEFAULT_TARGET_PRECISION = 0.95


@dataclass
class TrainResult:
    model_path: Path
    model_id: str
    manifest_path: Path
    metrics: dict[str, Any]
    quantized_path: Path | None = None
    quantized_id: str | None = None
    quantized_metrics: dict[str, Any] | None = None
    counts: dict[str, int] = field(default_factory=dict)
    threshold: dict[str, Any] = field(default_factory=dict)
    fit: dict[str, Any] = field(default_factory=dict)
    out_of_source: dict[str, Any] = field(default_factory=dict)
    quantized_threshold: dict[str, Any] | None = None


def _save_by_content(model: Any, out_dir: Path, suffix: str) -> tuple[Path, str, str]:
    """Save under a temporary name, then rename to `model-<sha256[:16]><suffix>`."""
    tmp = out_dir / f".saving-{os.getpid()}{suffix}"
    try:
        model.save_model(str(tmp))
        model_id, sha = content_id(tmp)
        final = out_dir / f"{model_id}{suffix}"
        tmp.replace(final)
    finally:
        tmp.unlink(missing_ok=True)
    return final, model_id, sha


def _write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def _choose_threshold(
    held_out: FoldScores | None, labels: np.ndarray, valid_scores: np.ndarray, target_precision: float
) -> dict[str, Any]:
    """The cut-off for `target_precision`, read where the model meets pages like a crawl's: held-out sources.

    On an in-source split the math texts score near 1, so a cut-off chosen there sits far above where math
    from elsewhere lands (the demo crawl's math pages all fell below it). Held-out-source scores come from
    models that never saw those texts, as the final model never saw the crawl; without them the in-source
    split is all there is.
    """
    if held_out is not None:
        chosen = threshold_for_precision(held_out.labels, held_out.scores, target_precision)
        split = "held_out_sources"
    else:
        chosen = threshold_for_precision(labels, valid_scores, target_precision)
        split = "validation"
    if not chosen["reached"] and chosen["threshold"] is not None:
        log.warning(
            "no threshold reaches precision %.2f on the %s split; using the most precise one, %.4f",
            target_precision,
            split,
            chosen["threshold"],
        )
    return {**chosen, "split": split}


def train_classifier(
    positives: str | Path | Sequence[str | Path],
    negatives: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    *,
    dim: int = PAPER_PRESET.dim,
    lr: float = PAPER_PRESET.lr,
    word_ngrams: int = PAPER_PRESET.word_ngrams,
    min_count: int = PAPER_PRESET.min_count,
    epoch: int = PAPER_PRESET.epoch,
    bucket: int = DEFAULT_BUCKET,
    seed: int = 0,
    valid_fraction: float = 0.1,
    quantize: bool = False,
    quantize_cutoff: int = DEFAULT_QUANTIZE_CUTOFF,
    max_per_class: int | None = None,
    positive_text_field: str | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
    threads: int = 1,
    fit: str = "auto",
    max_tune_epochs: int = DEFAULT_MAX_TUNE_EPOCHS,
    target_precision: float = DEFAULT_TARGET_PRECISION,
    out_of_source: bool = True,
) -> TrainResult:
    """Train, evaluate on a held-out split, and write `model-<hash>.bin` plus its `.json` manifest.

    Starts from DeepSeekMath's settings (dim 256, lr 0.1, wordNgrams 3, minCount 3, epoch 3); with
    `fit="auto"` an underfit model is replaced by the best of a small epochs/lr grid (`curate.classify.fit`).
    The manifest records the choice, a threshold for `target_precision` on the validation PR curve, and the
    AUC on a positive source held out of training. `threads=1` makes the model, and its id, reproducible;
    more threads train faster but hogwild updates race.
    """
    if not 0.0 < valid_fraction < 1.0:
        raise ConfigError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
    if not 0.0 < target_precision <= 1.0:
        raise ConfigError(f"target_precision must be in (0, 1], got {target_precision}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    positive_examples, seed_urls = load_positives(positives, text_field=positive_text_field, max_chars=max_chars)
    if not positive_examples:
        raise ConfigError(f"positives: no texts found in {positives}")
    wanted = min(len(positive_examples), max_per_class or len(positive_examples))
    negative_examples, negative_stats = sample_negatives(
        negatives,
        wanted,
        seed=seed,
        exclude_urls=seed_urls,
        exclude_texts={e.key for e in positive_examples},
        max_chars=max_chars,
    )
    # Balanced classes: the smaller side sets the size of both.
    per_class = min(wanted, len(negative_examples))
    if per_class < 50:
        raise ConfigError(f"only {per_class} examples per class; a classifier needs hundreds of each")
    positive_examples = take(positive_examples, per_class, seed)
    negative_examples = take(negative_examples, per_class, seed)
    train, valid = split_examples(positive_examples + negative_examples, valid_fraction, seed)
    if len(valid) < 2:
        raise ConfigError(f"valid_fraction {valid_fraction} of {per_class} per class holds out nothing; raise it")
    load_seconds = time.perf_counter() - started

    params = FastTextParams(dim, lr, word_ngrams, min_count, epoch, bucket, seed, threads)
    with tempfile.TemporaryDirectory(dir=out, prefix=".train-") as tmp_dir:
        train_file = Path(tmp_dir) / "train.txt"
        write_fasttext_file(train_file, train)
        labels = np.array([e.label == MATH_LABEL for e in valid])
        valid_texts = [e.text for e in valid]
        folds = None
        if out_of_source:
            folds = SourceFolds(train, valid, positive_examples, held_out_sources(positive_examples), Path(tmp_dir))
        started = time.perf_counter()
        fitted = fit_model(
            train_file, valid_texts, labels, params, mode=fit, max_tune_epochs=max_tune_epochs, folds=folds
        )
        model, params = fitted.model, fitted.params
        train_seconds = time.perf_counter() - started

        valid_scores = math_probabilities(model, valid_texts)
        threshold = _choose_threshold(fitted.held_out, labels, valid_scores, target_precision)
        cut = threshold["threshold"] if threshold["threshold"] is not None else 0.5
        metrics = evaluate(labels, valid_scores, threshold=cut)
        if fitted.held_out is not None:
            source_check = fitted.held_out.record()
        else:
            note = "disabled" if not out_of_source else "needs two positive sources, one with >= 20 texts"
            source_check = {"held_out_sources": [], "roc_auc": None, "note": note}
        model_path, model_id, sha = _save_by_content(model, out, ".bin")

        counts = {
            "train_positive": sum(e.label == MATH_LABEL for e in train),
            "train_negative": sum(e.label == OTHER_LABEL for e in train),
            "valid_positive": int(labels.sum()),
            "valid_negative": int((~labels).sum()),
            "seed_urls": len(seed_urls),
            **negative_stats,
        }
        manifest: dict[str, Any] = {
            "model_id": model_id,
            "file": model_path.name,
            "sha256": sha,
            "trainer": TRAINER_VERSION,
            "labels": {"positive": MATH_LABEL, "negative": OTHER_LABEL},
            "fasttext": params.to_fasttext(),
            "fit": fitted.record,
            "threshold": threshold,
            "out_of_source": source_check,
            "preprocess": preprocess_config(max_chars),
            "data": {
                "positives": [str(p) for p in expand_paths(positives)],
                "negatives": [str(p) for p in expand_paths(negatives)],
                "valid_fraction": valid_fraction,
                "counts": counts,
            },
            "metrics": metrics,
            "seconds": {
                "load": round(load_seconds, 3),
                "train": round(train_seconds, 3),
            },
        }
        result = TrainResult(
            model_path,
            model_id,
            manifest_path_for(model_path),
            metrics,
            counts=counts,
            threshold=threshold,
            fit=fitted.record,
            out_of_source=source_check,
        )

        if quantize:
            started = time.perf_counter()
            # qnorm and no retraining: a size/precision trade that needs no second pass over the data.
            model.quantize(input=str(train_file), qnorm=True, retrain=False, cutoff=quantize_cutoff)
            quantize_seconds = time.perf_counter() - started
            q_scores = math_probabilities(model, valid_texts)
            q_threshold = threshold_for_precision(labels, q_scores, target_precision)
            q_cut = q_threshold["threshold"] if q_threshold["threshold"] is not None else 0.5
            q_metrics = evaluate(labels, q_scores, threshold=q_cut)
            q_path, q_id, q_sha = _save_by_content(model, out, ".ftz")
            q_manifest = {
                **manifest,
                "model_id": q_id,
                "file": q_path.name,
                "sha256": q_sha,
                "quantized_from": model_id,
                "quantize": {"qnorm": True, "retrain": False, "cutoff": quantize_cutoff},
                "threshold": q_threshold,
                "metrics": q_metrics,
                "seconds": {**manifest["seconds"], "quantize": round(quantize_seconds, 3)},
            }
            _write_manifest(manifest_path_for(q_path), q_manifest)
            manifest["quantized"] = {"model_id": q_id, "file": q_path.name}
            result.quantized_path, result.quantized_id, result.quantized_metrics = q_path, q_id, q_metrics
            result.quantized_threshold = q_threshold

    _write_manifest(result.manifest_path, manifest)
    log.info(
        "trained %s: validation roc_auc=%.4f, out-of-source roc_auc=%s, threshold %.4f for precision %.2f",
        model_id,
        metrics["roc_auc"],
        source_check.get("roc_auc"),
        cut,
        target_precision,
    )
    return result
