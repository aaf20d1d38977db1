"""`curate run`: the DeepSeekMath collection pipeline, stage by stage, resumable.

The stages, their names in the run directory and their order are curate.stages.registry.STAGES: ingest
(extract, URL dedup), near-dedup, then per iteration train, score, select, domains and seed expansion,
then decontamination; export writes the Parquet shards last.

Every stage is skipped when its manifest fingerprint matches, so an interrupted run is resumed by running
the same command again. The loop stops after `loop.iterations`, or early when at least
`loop.stop_overlap` of an iteration's collection was already collected by the previous iteration
(DeepSeekMath stopped after four rounds at ~98%). An iteration that needs annotations and has none stops
the run cleanly with instructions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from curate.classify.select import SelectConfig
from curate.config import is_int, is_number, section, unknown_keys
from curate.errors import ConfigError
from curate.io import fs
from curate.manifest import Manifest
from curate.run_layout import RUN_JSON
from curate.stage import Inputs, RunContext
from curate.stages import registry
from curate.stages.decontam import DecontamConfig
from curate.stages.export.config import ExportSection
from curate.stages.ingest import IngestConfig
from curate.stages.train import TrainConfig

if TYPE_CHECKING:
    from curate.stages.dedup import DedupConfig
    from curate.stages.domains import DomainConfig

log = logging.getLogger(__name__)


@dataclass
class LoopConfig:
    iterations: int = 1
    stop_overlap: float = 0.98
    annotations: str = "annotations"

    def __post_init__(self) -> None:
        if not is_int(self.iterations) or self.iterations < 1:
            raise ConfigError(f"loop.iterations must be an integer >= 1, got {self.iterations!r}")
        if not is_number(self.stop_overlap) or not 0.0 < self.stop_overlap <= 1.0:
            raise ConfigError(f"loop.stop_overlap must be a number in (0, 1], got {self.stop_overlap!r}")


@dataclass
class PipelineConfig:
    ingest: IngestConfig
    train: TrainConfig
    select: SelectConfig
    loop: LoopConfig
    decontaminate: DecontamConfig
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
            select=section(raw, "select", SelectConfig, origin),
            loop=section(raw, "loop", LoopConfig, origin),
            decontaminate=section(raw, "decontaminate", DecontamConfig, origin),
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


def _mapping(raw: dict[str, Any], name: str, origin: str) -> dict[str, Any]:
    values = raw.get(name) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{origin}: section {name!r} must be a mapping")
    return values


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
    from curate.stages.classify import ScoreConfig

    manifests: list[Manifest] = []

    def record(manifest: Manifest) -> Manifest:
        manifests.append(manifest)
        if on_stage:
            on_stage(manifest)
        return manifest

    def stage_dir(manifest: Manifest) -> str:
        return ctx.stage_dir(manifest.stage)

    extract = record(registry.EXTRACT.run(ctx, Inputs(registry.EXTRACT.name(), files=tuple(warc_paths)), config.ingest))
    url_dedup = record(
        registry.URL_DEDUP.run(ctx, Inputs(registry.URL_DEDUP.name(), stages=(stage_dir(extract),)), None)
    )
    near_dedup = record(
        registry.NEAR_DEDUP.run(ctx, Inputs(registry.NEAR_DEDUP.name(), stages=(stage_dir(url_dedup),)), config.dedup)
    )
    corpus = stage_dir(near_dedup)
    iterations: list[IterationResult] = []
    seed_stages: list[str] = []
    previous_selection: str | None = None
    selected_name: str | None = None
    status, message = "complete", ""
    for k in range(1, config.loop.iterations + 1):
        train = record(
            registry.TRAIN.run(ctx, Inputs(registry.TRAIN.name(k), stages=(corpus, *seed_stages)), config.train)
        )
        model_path = fs.join(stage_dir(train), train.extra["model_file"])
        score = record(
            registry.SCORE.run(ctx, Inputs(registry.SCORE.name(k), stages=(corpus,)), ScoreConfig(model_path))
        )
        selected = record(
            registry.SELECT.run(
                ctx,
                Inputs(registry.SELECT.name(k), stages=(stage_dir(score),)),
                config.select.at_model_threshold((train.extra.get("threshold") or {}).get("threshold")),
            )
        )
        domains = record(
            registry.DOMAINS.run(
                ctx, Inputs(registry.DOMAINS.name(k), stages=(stage_dir(score), stage_dir(selected))), config.domains
            )
        )
        overlap = _selection_overlap(ctx, stage_dir(selected), previous_selection) if previous_selection else None
        result = IterationResult(
            k, train.extra["model_id"], selected.rows_out, overlap, None, domains.extra["flagged_domains"]
        )
        iterations.append(result)
        previous_selection = stage_dir(selected)
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
                f"  review the flagged domains:  curate annotate review --stats {stage_dir(domains)} "
                f"--iteration {k} --root {config.loop.annotations}\n"
                f"  or add one directly:         curate annotate add mathoverflow.net/questions --label math "
                f"--iteration {k} --root {config.loop.annotations}\n"
                "  then run the same command again: finished stages are skipped."
            )
            break
        seed = record(
            registry.SEED.run(
                ctx, Inputs(registry.SEED.name(k), stages=(stage_dir(score), stage_dir(selected))), labels
            )
        )
        result.seed_added = seed.rows_out
        seed_stages.append(stage_dir(seed))

    export_dir = None
    final_stage = selected_name
    if status != "needs_annotations":
        if config.decontaminate.enabled and final_stage is not None:
            decontaminated = record(
                registry.DECONTAMINATE.run(
                    ctx,
                    Inputs(registry.DECONTAMINATE.name(), stages=(ctx.stage_dir(final_stage),)),
                    config.decontaminate,
                )
            )
            final_stage = decontaminated.stage
        _write_run_file(ctx, manifests, iterations, status, final_stage, config)
        if config.export.enabled and final_stage is not None:
            from curate.stages.export import run_export

            export_dir = config.export.out or ctx.stage_dir(registry.EXPORT_DIR)
            run_export(ctx, export_dir, source_stage=final_stage, config=config.export.stage_config())
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
    fs.write_text(fs.join(ctx.run_dir, RUN_JSON), json.dumps(payload, indent=2, default=str) + "\n")
