"""The classifier's training stage: fastText on the seed corpus (+ earlier expansions) vs random pages.

DeepSeekMath (section 2.1) trains on OpenWebMath as positives and random Common Crawl pages as negatives,
then adds each iteration's annotated seed expansion to the positives. The model and its metrics, threshold
and out-of-source evaluation land in the stage directory; the manifest names the model file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from curate.classify.fit import PAPER_PRESET
from curate.errors import ConfigError
from curate.fingerprints import files_fingerprint
from curate.io import fs
from curate.manifest import Manifest
from curate.stage import Inputs, RunContext, Stage

TRAIN_STEP = "fasttext_train_v1"


@dataclass
class TrainConfig:
    seed: list[str] = field(default_factory=list)  # seed corpus files/dirs (JSONL, Parquet, CNXML)
    seed_text_field: str | None = None
    # Text corpora drawn from beside the crawl's documents for negatives (JSONL/Parquet), for a crawl too small,
    # or too rich in math, to be the only sample of the web.
    negatives: list[str] = field(default_factory=list)
    # The paper's settings are owned by the trainer's preset; a recipe overrides them per key.
    dim: int = PAPER_PRESET.dim
    lr: float = PAPER_PRESET.lr
    word_ngrams: int = PAPER_PRESET.word_ngrams
    min_count: int = PAPER_PRESET.min_count
    epoch: int = PAPER_PRESET.epoch
    bucket: int = PAPER_PRESET.bucket
    quantize: bool = False
    max_per_class: int | None = None
    random_seed: int = 0
    valid_fraction: float = 0.1
    fit: str = "auto"  # auto: wordNgrams/epochs/lr chosen on seed sources held out of training; paper: as given
    target_precision: float = 0.95  # the threshold select uses when it has neither min_score nor a budget


def _parquet_parts(stage_dir: str) -> list[str]:
    """The kept-row files of a finished stage (never `_rejected/` or other `_` side datasets)."""
    root = Path(fs.local_path(stage_dir))
    return sorted(str(p) for p in root.glob("*.parquet"))


def run_train(ctx: RunContext, inputs: Inputs, config: TrainConfig) -> Manifest:
    """`inputs.stages`: the documents that give the negatives, then the seed stages of earlier iterations."""
    from curate.classify.train import train_classifier

    if not config.seed:
        raise ConfigError("train.seed: give at least one seed corpus path (math text, JSONL/Parquet/CNXML)")
    negatives_stage, *seed_stages = inputs.stages
    with Stage(
        ctx,
        inputs,
        config=asdict(config),
        steps=[TRAIN_STEP],
        input_fingerprints=[files_fingerprint(sorted(paths)) for paths in (config.seed, config.negatives) if paths],
        code=[train_classifier],
    ) as stage:
        if not stage.pending:
            return stage.result
        fs.make_dirs(stage.tmp_path)
        # Each seed stage is one source (not one per part file), so the out-of-source check can hold it out whole.
        positives = [*config.seed, *[fs.local_path(s) for s in seed_stages]]
        result = train_classifier(
            positives,
            [*_parquet_parts(negatives_stage), *config.negatives],
            fs.local_path(stage.tmp_path),
            dim=config.dim,
            lr=config.lr,
            word_ngrams=config.word_ngrams,
            min_count=config.min_count,
            epoch=config.epoch,
            bucket=config.bucket,
            seed=config.random_seed,
            valid_fraction=config.valid_fraction,
            quantize=config.quantize,
            max_per_class=config.max_per_class,
            positive_text_field=config.seed_text_field,
            fit=config.fit,
            target_precision=config.target_precision,
        )
        examples = sum(result.counts.values()) if result.counts else 0
        stage.finish(
            rows_in=examples,
            rows_out=examples,
            drops={},
            extra={
                "model_id": result.quantized_id or result.model_id,
                "model_file": (result.quantized_path or result.model_path).name,
                "metrics": result.quantized_metrics or result.metrics,
                "counts": result.counts,
                "threshold": result.quantized_threshold or result.threshold,
                "fit": result.fit,
                "out_of_source": result.out_of_source,
            },
        )
    return stage.result
