"""Loading a trained classifier and turning fastText's top-k output into one math probability per text.

Wrapped here rather than through datatrove's filter: its annotate-only mode is broken, and the scorer
must see exactly the preprocessing recorded in the model's manifest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curate.classify.preprocess import DEFAULT_MAX_CHARS, preprocess
from curate.errors import ConfigError

MATH_LABEL = "__label__math"
OTHER_LABEL = "__label__other"
MODEL_PREFIX = "model-"


@dataclass(frozen=True)
class ModelInfo:
    """What a scorer needs to know about a model file, read from the manifest beside it."""

    path: Path
    model_id: str
    max_chars: int
    threshold: float | None = None  # chosen on validation for a target precision (models since train v2)

    @property
    def manifest_path(self) -> Path:
        return manifest_path_for(self.path)


def manifest_path_for(model_path: Path) -> Path:
    return model_path.with_suffix(".json")


def content_id(path: Path) -> tuple[str, str]:
    """(model_id, full sha256) of a model file: the id changes exactly when the weights do."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    sha = digest.hexdigest()
    return f"{MODEL_PREFIX}{sha[:16]}", sha


def model_info(model_path: str | Path) -> ModelInfo:
    path = Path(model_path)
    if not path.is_file():
        raise ConfigError(f"model file {path} does not exist; train one with `curate classify train`")
    manifest_file = manifest_path_for(path)
    if not manifest_file.is_file():
        raise ConfigError(f"{path}: no manifest {manifest_file.name} beside it; models come from train_classifier")
    manifest: dict[str, Any] = json.loads(manifest_file.read_text())
    threshold = (manifest.get("threshold") or {}).get("threshold")
    return ModelInfo(
        path=path,
        model_id=manifest["model_id"],
        max_chars=int(manifest["preprocess"]["max_chars"]),
        threshold=None if threshold is None else float(threshold),
    )


def load_model(path: str | Path) -> Any:
    import fasttext

    # fastText prints to stderr and aborts the process on some malformed files; check the cheap things first.
    if not Path(path).is_file():
        raise ConfigError(f"model file {path} does not exist")
    return fasttext.load_model(str(path))


def math_probabilities(model: Any, lines: Sequence[str]) -> np.ndarray:
    """P(math) for already-preprocessed single-line texts, as float32."""
    if not lines:
        return np.zeros(0, dtype=np.float32)
    # k=2 returns both labels, so the math probability is read directly, never inferred as 1 - p(other).
    labels, probs = model.predict(list(lines), k=2, threshold=0.0, on_unicode_error="replace")
    scores = np.empty(len(lines), dtype=np.float32)
    for i, (doc_labels, doc_probs) in enumerate(zip(labels, probs, strict=True)):
        scores[i] = doc_probs[0] if doc_labels[0] == MATH_LABEL else doc_probs[1]
    # fastText adds 1e-5 inside its log before exponentiating, so a sure prediction can read 1.00001.
    return np.clip(scores, 0.0, 1.0, out=scores)


def score_texts(model: Any, texts: Sequence[str | None], max_chars: int = DEFAULT_MAX_CHARS) -> np.ndarray:
    return math_probabilities(model, [preprocess(t, max_chars) for t in texts])
