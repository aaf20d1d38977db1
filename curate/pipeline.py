"""`curate run`: the DeepSeekMath collection pipeline, stage by stage, resumable.

    01_extract, 02_url_dedup          ingest (curate.stages.ingest)
    03_near_dedup                     MinHash LSH (curate.stages.dedup)
    iter-NN/01_train                  fastText on seed (+ earlier expansions) vs random pages
    iter-NN/02_math_score             every page scored (re-ranked each iteration)
    iter-NN/03_math_select            threshold and/or token budget
    iter-NN/04_domains                per-domain collected fraction, flagged domains, prefix suggestions
    iter-NN/05_seed                   uncollected pages under annotated math patterns -> next seed
    90_decontaminate                  benchmark n-gram removal with an audit trail
    export/                           Parquet shards + manifest.json

Every stage is skipped when its manifest fingerprint matches, so an interrupted run is resumed by running
the same command again. The loop stops after `loop.iterations`, or early when at least
`loop.stop_overlap` of an iteration's collection was already collected by the previous iteration
(DeepSeekMath stopped after four rounds at ~98%). An iteration that needs annotations and has none stops
the run cleanly with instructions.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curate.classify.fit import PAPER_PRESET
from curate.config import section, unknown_keys
from curate.errors import ConfigError
from curate.io import fs
from curate.manifest import Manifest
from curate.stage import RunContext, Stage, files_fingerprint
from curate.stages.ingest import URL_DEDUP_STAGE, IngestConfig, run_ingest

if TYPE_CHECKING:
    from curate.stages.dedup import DedupConfig
    from curate.stages.domains import DomainConfig

log = logging.getLogger(__name__)

NEAR_DEDUP = "03_near_dedup"
DECONTAMINATE = "90_decontaminate"
TRAIN_STEP = "fasttext_train_v1"
RUN_FILE = "run.json"


@dataclass
class TrainConfig:
    seed: list[str] = field(default_factory=list)  # seed corpus files/dirs (JSONL, Parquet, CNXML)
    seed_text_field: str | None = None
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
    fit: str = "auto"  # auto: an underfit model is replaced by the best epochs/lr on validation; paper: as given
    target_precision: float = 0.95  # the threshold select uses when it has neither min_score nor a budget


@dataclass
class SelectSection:
    # None with no token_budget: the threshold the model chose on validation for train.target_precision.
    # fastText scores are not calibrated, so a fixed 0.5 means nothing.
    min_score: float | None = None
    token_budget: int | None = None
    sweep: list[int] = field(default_factory=list)


@dataclass
class LoopConfig:
    iterations: int = 1
    stop_overlap: float = 0.98
    annotations: str = "annotations"

    def __post_init__(self) -> None:
        if not _is_int(self.iterations) or self.iterations < 1:
            raise ConfigError(f"loop.iterations must be an integer >= 1, got {self.iterations!r}")
        if not _is_number(self.stop_overlap) or not 0.0 < self.stop_overlap <= 1.0:
            raise ConfigError(f"loop.stop_overlap must be a number in (0, 1], got {self.stop_overlap!r}")


@dataclass
class DecontamSection:
    enabled: bool = True
    benchmarks: str | None = None  # YAML registry of benchmarks; default: the shared ones
    data_root: str | None = None  # where the registry's relative paths point
    n: int = 10
    mode: str = "drop"

    def __post_init__(self) -> None:
        from curate.decontam.step import MODES

        if self.mode not in MODES:
            raise ConfigError(f"decontaminate.mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not _is_int(self.n) or self.n < 1:
            raise ConfigError(f"decontaminate.n must be an integer >= 1, got {self.n!r}")


@dataclass
class ExportSection:
    enabled: bool = True
    out: str | None = None  # default: <run>/export
    target_shard_mb: float = 512.0

    def __post_init__(self) -> None:
        if not _is_number(self.target_shard_mb) or self.target_shard_mb <= 0:
            raise ConfigError(f"export.target_shard_mb must be a number > 0, got {self.target_shard_mb!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class PipelineConfig:
    ingest: IngestConfig
    train: TrainConfig
    select: SelectSection
    loop: LoopConfig
    decontaminate: DecontamSection
    export: ExportSection
    dedup: DedupConfig
    domains: DomainConfig

    @classmethod
    def from_dict(cls, raw: dict[str, Any], origin: str = "configuration") -> PipelineConfig:
        """Every section typed and range-checked here, before any work: a typo fails in well under a second."""
        from curate.stages.dedup import dedup_config
        from curate.stages.domains import DomainConfig

        known = ["ingest", "train", "select", "loop", "decontaminate", "export", "dedup", "domains"]
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ConfigError(f"{origin}: unknown section(s) {unknown_keys(unknown, known)}")
        return cls(
            ingest=section(raw, "ingest", IngestConfig, origin),
            train=section(raw, "train", TrainConfig, origin),
            select=section(raw, "select", SelectSection, origin),
            loop=section(raw, "loop", LoopConfig, origin),
            decontaminate=section(raw, "decontaminate", DecontamSection, origin),
            export=section(raw, "export", ExportSection, origin),
            dedup=dedup_config(_mapping(raw, "dedup", origin), origin),
            domains=section(raw, "domains", DomainConfig, origin),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class IterationResult:
    iteration: int
    model_id: str
    selected: int
    overlap_with_previous: float | None
    seed_added: int | None
    flagged_domains: int


@dataclass
class RunResult:
    manifests: list[Manifest]
    iterations: list[IterationResult]
    status: str  # "complete" | "needs_annotations" | "stopped_by_overlap"
    message: str = ""
    export_dir: str | None = None


def _iteration_dir(k: int) -> str:
    return f"iter-{k:02d}"


def _mapping(raw: dict[str, Any], name: str, origin: str) -> dict[str, Any]:
    values = raw.get(name) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{origin}: section {name!r} must be a mapping")
    return values


def _parquet_parts(stage_dir: str) -> list[str]:
    """The kept-row files of a finished stage (never `_rejected/` or other `_` side datasets)."""
    root = Path(fs.local_path(stage_dir))
    return sorted(str(p) for p in root.glob("*.parquet"))


def run_train(
    ctx: RunContext, name: str, config: TrainConfig, negatives_stage: str, seed_stages: list[str]
) -> Manifest:
    from curate.classify.train import train_classifier

    if not config.seed:
        raise ConfigError("train.seed: give at least one seed corpus path (math text, JSONL/Parquet/CNXML)")
    stage = Stage(
        ctx,
        name,
        config=asdict(config),
        steps=[TRAIN_STEP],
        inputs=[negatives_stage, *seed_stages],
        input_fingerprints=[files_fingerprint(sorted(config.seed))],
        code=[train_classifier],
    )
    done = stage.finished()
    if done is not None:
        return done
    stage.begin()
    fs.make_dirs(stage.tmp_path)
    # Each seed stage is one source (not one per part file), so the out-of-source check can hold it out whole.
    positives = [*config.seed, *[fs.local_path(s) for s in seed_stages]]
    result = train_classifier(
        positives,
        _parquet_parts(negatives_stage),
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
    model_file = (result.quantized_path or result.model_path).name
    model_id = result.quantized_id or result.model_id
    examples = sum(result.counts.values()) if result.counts else 0
    return stage.commit(
        rows_in=examples,
        rows_out=examples,
        drops={},
        extra={
            "model_id": model_id,
            "model_file": model_file,
            "metrics": result.quantized_metrics or result.metrics,
            "counts": result.counts,
            "threshold": result.quantized_threshold or result.threshold,
            "fit": result.fit,
            "out_of_source": result.out_of_source,
        },
    )


def _select_config(select: SelectSection, train: Manifest) -> Any:
    """Without min_score and budget, select at the threshold the model chose for the target precision."""
    from curate.classify.select import SelectConfig

    min_score = select.min_score
    if min_score is None and select.token_budget is None:
        min_score = (train.extra.get("threshold") or {}).get("threshold")
        if min_score is None:
            raise ConfigError(
                "select: the model records no threshold; set select.min_score or select.token_budget "
                "(or retrain: models since trainer v2 record one)"
            )
    return SelectConfig(min_score=min_score, token_budget=select.token_budget, sweep=tuple(select.sweep))


def _selection_overlap(ctx: RunContext, current: str, previous: str) -> float:
    spark = ctx.spark
    now = spark.read.parquet(fs.to_uri(current)).select("doc_id")
    before = spark.read.parquet(fs.to_uri(previous)).select("doc_id")
    total = now.count()
    if total == 0:
        return 1.0
    return now.join(before, "doc_id", "left_semi").count() / total


def _math_labels(root: str, iteration: int) -> dict[str, str]:
    from curate.annotate.store import AnnotationStore

    store = AnnotationStore(root)
    effective = store.effective([a for a in store.read() if a.iteration <= iteration])
    return {pattern: a.label for pattern, a in effective.items() if not a.removed}


def run_pipeline(
    ctx: RunContext,
    warc_paths: list[str],
    config: PipelineConfig,
    *,
    on_stage: Callable[[Manifest], None] | None = None,
) -> RunResult:
    """Run every stage under the run directory's lock: a second writer into the same run is refused."""
    from curate.run_lock import run_lock

    with run_lock(ctx.run_dir):
        return _run_locked(ctx, warc_paths, config, on_stage)


def _run_locked(
    ctx: RunContext,
    warc_paths: list[str],
    config: PipelineConfig,
    on_stage: Callable[[Manifest], None] | None,
) -> RunResult:
    from curate.stages.classify import run_score_stage, run_select_stage
    from curate.stages.dedup import run_dedup_stage
    from curate.stages.domains import run_domains
    from curate.stages.seed import run_seed_expansion

    manifests: list[Manifest] = []

    def record(manifest: Manifest) -> Manifest:
        manifests.append(manifest)
        if on_stage:
            on_stage(manifest)
        return manifest

    for manifest in run_ingest(ctx, warc_paths, config.ingest):
        record(manifest)
    record(run_dedup_stage(ctx, ctx.stage_dir(URL_DEDUP_STAGE), config=config.dedup, name=NEAR_DEDUP))
    corpus = ctx.stage_dir(NEAR_DEDUP)
    domain_config = config.domains
    iterations: list[IterationResult] = []
    seed_stages: list[str] = []
    previous_selection: str | None = None
    selected_name: str | None = None
    status, message = "complete", ""
    for k in range(1, config.loop.iterations + 1):
        it = _iteration_dir(k)
        train = record(run_train(ctx, f"{it}/01_train", config.train, corpus, seed_stages))
        model_path = fs.join(ctx.stage_dir(f"{it}/01_train"), train.extra["model_file"])
        score = record(run_score_stage(ctx, model_path, corpus, name=f"{it}/02_math_score"))
        iteration_select = _select_config(config.select, train)
        selected = record(
            run_select_stage(ctx, iteration_select, ctx.stage_dir(score.stage), name=f"{it}/03_math_select")
        )
        domains = record(
            run_domains(
                ctx, f"{it}/04_domains", ctx.stage_dir(score.stage), ctx.stage_dir(selected.stage), domain_config
            )
        )
        overlap = (
            _selection_overlap(ctx, ctx.stage_dir(selected.stage), previous_selection) if previous_selection else None
        )
        result = IterationResult(
            k, train.extra["model_id"], selected.rows_out, overlap, None, domains.extra["flagged_domains"]
        )
        iterations.append(result)
        previous_selection = ctx.stage_dir(selected.stage)
        selected_name = selected.stage
        if overlap is not None and overlap >= config.loop.stop_overlap:
            status = "stopped_by_overlap"
            message = f"iteration {k}: {overlap:.1%} of the collection was already collected in iteration {k - 1}"
            break
        if k == config.loop.iterations:
            break
        labels = _math_labels(config.loop.annotations, k)
        if not any(label == "math" for label in labels.values()):
            status = "needs_annotations"
            message = (
                f"iteration {k + 1} needs math URL patterns and {config.loop.annotations}/ has none for iterations <= {k}.\n"
                f"  review the flagged domains:  curate annotate review --stats {ctx.stage_dir(domains.stage)} "
                f"--iteration {k} --root {config.loop.annotations}\n"
                f"  or add one directly:         curate annotate add mathoverflow.net/questions --label math "
                f"--iteration {k} --root {config.loop.annotations}\n"
                "  then run the same command again: finished stages are skipped."
            )
            break
        seed = record(
            run_seed_expansion(ctx, f"{it}/05_seed", ctx.stage_dir(score.stage), ctx.stage_dir(selected.stage), labels)
        )
        result.seed_added = seed.rows_out
        seed_stages.append(ctx.stage_dir(seed.stage))

    export_dir = None
    final_stage = selected_name
    if status != "needs_annotations":
        if config.decontaminate.enabled and final_stage is not None:
            from curate.stages.decontam import run_decontam_stage

            record(
                run_decontam_stage(
                    ctx,
                    ctx.stage_dir(final_stage),
                    name=DECONTAMINATE,
                    benchmarks=config.decontaminate.benchmarks,
                    data_root=config.decontaminate.data_root,
                    n=config.decontaminate.n,
                    mode=config.decontaminate.mode,
                )
            )
            final_stage = DECONTAMINATE
        _write_run_file(ctx, manifests, iterations, status, final_stage, config)
        if config.export.enabled and final_stage is not None:
            from curate.stages.export import run_export

            export_dir = config.export.out or ctx.stage_dir("export")
            run_export(
                ctx,
                export_dir,
                target_shard_bytes=int(config.export.target_shard_mb * 2**20),
                source_stage=final_stage,
            )
    _write_run_file(ctx, manifests, iterations, status, final_stage, config)
    return RunResult(manifests, iterations, status, message, export_dir)


def _write_run_file(
    ctx: RunContext,
    manifests: list[Manifest],
    iterations: list[IterationResult],
    status: str,
    final_stage: str | None,
    config: PipelineConfig,
) -> None:
    payload = {
        "stages": [m.stage for m in manifests],
        "final_stage": final_stage,
        "iterations": len(iterations),
        "iteration_results": [asdict(i) for i in iterations],
        "status": status,
        "config": config.to_dict(),
    }
    fs.write_text(fs.join(ctx.run_dir, RUN_FILE), json.dumps(payload, indent=2, default=str) + "\n")
