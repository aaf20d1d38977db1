"""Training the fastText math classifier (DeepSeekMath §2.1, first iteration).

Positives come from a seed corpus; negatives are drawn at random from the ingested documents, leaving out
any page whose URL is in the seed, so a seed page crawled again is never taught as non-math. Classes are
balanced, every random choice derives from (seed, document identity), and a held-out split is scored
into the manifest so a threshold can be picked without rerunning anything.
"""

from __future__ import annotations

import heapq
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
import pyarrow.parquet as pq
import xxhash

from curate.classify.fit import (
    DEFAULT_MAX_TUNE_EPOCHS,
    PAPER_PRESET,
    FastTextParams,
    fit_model,
    score_summary,
    train_fasttext,
)
from curate.classify.metrics import evaluate, threshold_for_precision
from curate.classify.model import MATH_LABEL, OTHER_LABEL, content_id, manifest_path_for, math_probabilities
from curate.classify.preprocess import DEFAULT_MAX_CHARS, preprocess, preprocess_config
from curate.classify.seed import expand_paths, read_seed, url_key
from curate.errors import ConfigError, InputError

log = logging.getLogger(__name__)

TRAINER_VERSION = "fasttext_math_train_v2"
# fastText's own default; with dim 256 it makes a ~2 GB model (NOTES-deps P7). Tests pass a small value.
DEFAULT_BUCKET = 2_000_000
DEFAULT_QUANTIZE_CUTOFF = 200_000
# Precision the selection threshold is chosen for on the validation PR curve (DeepSeekMath does not say; a
# corpus is better missing some math than full of non-math).
DEFAULT_TARGET_PRECISION = 0.95
MIN_HELD_OUT_SOURCE = 20


@dataclass(frozen=True)
class Example:
    text: str  # preprocessed
    key: str  # stable identity: doc_id for documents, content hash for seed texts
    label: str
    source: str = ""  # the positives argument it came from: a whole source can be held out of training


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


def _rank(seed: int, purpose: str, key: str) -> int:
    return xxhash.xxh64_intdigest(f"{seed}\x00{purpose}\x00{key}")


def load_positives(
    paths: str | Path | Sequence[str | Path], *, text_field: str | None, max_chars: int
) -> tuple[list[Example], set[str]]:
    """Preprocessed seed texts (exact duplicates once, under their first source) and the seed pages' URL keys.

    Each path given is one source (a directory of StackMathQA shards is one source, not 96).
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    examples: dict[str, Example] = {}
    urls: set[str] = set()
    for source in paths:
        for doc in read_seed(source, text_field=text_field):
            key = url_key(doc.url)
            if key:
                urls.add(key)
            text = preprocess(doc.text, max_chars)
            if text:
                digest = xxhash.xxh128_hexdigest(text)
                examples.setdefault(digest, Example(text, digest, MATH_LABEL, str(source)))
    return list(examples.values()), urls


def sample_negatives(
    paths: str | Path | Sequence[str | Path],
    n: int,
    *,
    seed: int,
    exclude_urls: set[str],
    exclude_texts: set[str],
    max_chars: int,
) -> tuple[list[Example], dict[str, int]]:
    """`n` documents drawn uniformly from DOCUMENTS Parquet, by smallest hash of (seed, doc_id).

    Two passes: ids and URLs first (cheap columns), texts only for the chosen ids, so a large ingest is
    never held in memory. The draw does not depend on file order or partitioning.
    """
    files = [p for p in expand_paths(paths) if p.name.endswith(".parquet")]
    if not files:
        raise ConfigError(f"negatives: no Parquet files under {paths}; point it at an ingest stage's output")
    heap: list[tuple[int, str]] = []  # max-heap via negated rank: the n smallest ranks survive
    seen = excluded = 0
    for path in files:
        names = pq.read_schema(path).names
        if "doc_id" not in names or "text" not in names:
            raise InputError(str(path), "negatives need DOCUMENTS columns doc_id and text")
        columns = ["doc_id"] + (["url"] if "url" in names else [])
        for batch in pq.ParquetFile(path).iter_batches(columns=columns, batch_size=65536):
            ids = batch.column("doc_id").to_pylist()
            doc_urls = batch.column("url").to_pylist() if "url" in columns else [None] * len(ids)
            for doc_id, url in zip(ids, doc_urls, strict=True):
                seen += 1
                if url_key(url) in exclude_urls:
                    excluded += 1
                    continue
                item = (-_rank(seed, "negative", doc_id), doc_id)
                if len(heap) < n:
                    heapq.heappush(heap, item)
                elif item > heap[0]:
                    heapq.heapreplace(heap, item)
    chosen = {doc_id for _, doc_id in heap}
    examples: dict[str, Example] = {}
    duplicates_of_positives = 0
    for path in files:
        for batch in pq.ParquetFile(path).iter_batches(columns=["doc_id", "text"], batch_size=4096):
            for doc_id, raw in zip(batch.column("doc_id").to_pylist(), batch.column("text").to_pylist(), strict=True):
                if doc_id not in chosen:
                    continue
                text = preprocess(raw, max_chars)
                if not text:
                    continue
                if xxhash.xxh128_hexdigest(text) in exclude_texts:
                    duplicates_of_positives += 1
                    continue
                examples.setdefault(doc_id, Example(text, doc_id, OTHER_LABEL))
    stats = {
        "documents_seen": seen,
        "excluded_seed_urls": excluded,
        "excluded_seed_texts": duplicates_of_positives,
    }
    return sorted(examples.values(), key=lambda e: e.key), stats


def _take(examples: list[Example], n: int, seed: int) -> list[Example]:
    return sorted(examples, key=lambda e: _rank(seed, "take", e.key))[:n]


def split_examples(examples: list[Example], valid_fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Per-class hold-out: each class contributes the same fraction to validation."""
    train: list[Example] = []
    valid: list[Example] = []
    for label in (MATH_LABEL, OTHER_LABEL):
        group = sorted((e for e in examples if e.label == label), key=lambda e: _rank(seed, "valid", e.key))
        n_valid = round(len(group) * valid_fraction)
        valid.extend(group[:n_valid])
        train.extend(group[n_valid:])
    # fastText's SGD reads the file in order: interleave the classes instead of one block after the other.
    train.sort(key=lambda e: _rank(seed, "order", e.key))
    return train, valid


def _write_fasttext_file(path: Path, examples: list[Example]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for example in examples:
            handle.write(f"{example.label} {example.text}\n")


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


def _held_out_source(positives: list[Example]) -> str | None:
    """The positive source to leave out of the out-of-source check: the smallest with enough examples.

    The smallest costs the check the least training data; a source of under 20 texts says little.
    """
    sizes: dict[str, int] = {}
    for example in positives:
        sizes[example.source] = sizes.get(example.source, 0) + 1
    eligible = sorted((n, name) for name, n in sizes.items() if n >= MIN_HELD_OUT_SOURCE)
    if len(sizes) < 2 or not eligible:
        return None
    return eligible[0][1]


def out_of_source_check(
    train: list[Example], valid: list[Example], positives: list[Example], params: FastTextParams, work: Path
) -> dict[str, Any]:
    """AUC of a model that never saw one whole positive source, on that source against held-out negatives.

    In-source validation flatters a classifier (0.998 where unseen math pages give 0.79): texts of one
    source share templates and vocabulary. This trains a second model with the chosen settings, without the
    held-out source, and scores that source's texts against the validation negatives.
    """
    held_out = _held_out_source(positives)
    if held_out is None:
        return {"held_out_source": None, "note": "needs at least two positive sources, one with >= 20 texts"}
    train_file = work / "out_of_source.txt"
    _write_fasttext_file(train_file, [e for e in train if e.source != held_out])
    model = train_fasttext(train_file, params)
    test = [e for e in positives if e.source == held_out] + [e for e in valid if e.label == OTHER_LABEL]
    labels = np.array([e.label == MATH_LABEL for e in test])
    scores = math_probabilities(model, [e.text for e in test])
    return {
        "held_out_source": held_out,
        "n_positive": int(labels.sum()),
        "n_negative": int((~labels).sum()),
        **score_summary(labels, scores),
    }


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
    positive_examples = _take(positive_examples, per_class, seed)
    negative_examples = _take(negative_examples, per_class, seed)
    train, valid = split_examples(positive_examples + negative_examples, valid_fraction, seed)
    if len(valid) < 2:
        raise ConfigError(f"valid_fraction {valid_fraction} of {per_class} per class holds out nothing; raise it")
    load_seconds = time.perf_counter() - started

    params = FastTextParams(dim, lr, word_ngrams, min_count, epoch, bucket, seed, threads)
    with tempfile.TemporaryDirectory(dir=out, prefix=".train-") as tmp_dir:
        train_file = Path(tmp_dir) / "train.txt"
        _write_fasttext_file(train_file, train)
        labels = np.array([e.label == MATH_LABEL for e in valid])
        valid_texts = [e.text for e in valid]
        started = time.perf_counter()
        fitted = fit_model(train_file, valid_texts, labels, params, mode=fit, max_tune_epochs=max_tune_epochs)
        model, params = fitted.model, fitted.params
        train_seconds = time.perf_counter() - started

        valid_scores = math_probabilities(model, valid_texts)
        threshold = threshold_for_precision(labels, valid_scores, target_precision)
        cut = threshold["threshold"] if threshold["threshold"] is not None else 0.5
        metrics = evaluate(labels, valid_scores, threshold=cut)
        if not threshold["reached"]:
            log.warning(
                "no threshold reaches precision %.2f on validation; using the most precise one, %.4f",
                target_precision,
                cut,
            )
        started = time.perf_counter()
        source_check = (
            out_of_source_check(train, valid, positive_examples, params, Path(tmp_dir))
            if out_of_source
            else {"held_out_source": None, "note": "disabled"}
        )
        source_seconds = time.perf_counter() - started
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
                "out_of_source": round(source_seconds, 3),
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
