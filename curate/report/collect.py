"""The numbers a report shows, read from a run directory with pyarrow (no JVM).

Every section is optional: a stage that did not run gives None (the page says "not run"), and a stage
that cannot be read gives a note naming the stage and the error instead of failing the whole report.
Large columns are scanned in batches (score histograms, top pages), so memory stays flat; the time is
one pass over the columns read, which suits runs up to tens of GB on local disk.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.errors import CurateError
from curate.io import fs
from curate.manifest import Manifest
from curate.run_layout import RunLayout, iteration_of
from curate.stages import registry
from curate.stages.registry import CONTAMINATION_DIR, DUPLICATES_DIR, PREFIXES_DIR

log = logging.getLogger(__name__)

HISTOGRAM_BINS = 40
TOP_DOMAINS = 25
TOP_PAGES = 15
CONTAMINATION_EXAMPLES = 25
SNIPPET_CHARS = 280
DEFAULT_FLAG_THRESHOLD = 0.10
# Cluster sizes as DeepSeek LLM's dedup tables group them: small exact sizes, then decades.
CLUSTER_BINS: list[tuple[str, int, int]] = [
    ("2", 2, 2), ("3", 3, 3), ("4", 4, 4), ("5", 5, 5), ("6–10", 6, 10), ("11–100", 11, 100),
    ("101–1000", 101, 1000), (">1000", 1001, 2**62),
]  # fmt: skip


@dataclass
class StageInfo:
    stage: str
    manifest: Manifest | None


@dataclass
class ScoreHistogram:
    iteration: int
    stage: str
    model_ids: list[str]
    edges: list[float]
    counts: list[int]
    outside: int  # scores outside [0, 1] or NaN
    missing: int  # null scores
    cutoff: float | None
    cutoff_source: str


@dataclass
class IterationSummary:
    iteration: int
    scored: int | None
    selected: int | None
    tokens: int | None
    tokens_source: str
    rule: str
    flagged_domains: int | None
    overlap_with_previous: float | None


@dataclass
class DomainSummary:
    stage: str
    iteration: int | None
    key: str
    threshold: float
    domains: int
    flagged: int
    top: list[dict[str, Any]]
    prefixes: list[dict[str, Any]]


@dataclass
class AnnotationDomain:
    domain: str
    pages_seen: int
    pages_collected: int
    collected_fraction: float
    label: str | None  # the label the matcher gives the domain itself, None if none
    label_pattern: str | None  # the annotation it comes from (the domain, or a broader pattern)
    inner_labels: list[tuple[str, str]]  # labelled patterns inside the domain: (pattern, label)
    samples: list[dict[str, Any]]  # url, title, snippet, collected


@dataclass
class AnnotationReviewSummary:
    stage: str
    store: str  # the annotation store read
    store_found: bool
    labels: int  # effective annotations in the store
    domains: list[AnnotationDomain]


@dataclass
class ContaminationSummary:
    stage: str
    documents: int
    per_benchmark: dict[str, dict[str, int]]
    examples: list[dict[str, Any]]


@dataclass
class DedupSummary:
    stage: str
    clusters: int
    removed: int
    size_bins: list[tuple[str, int]]
    largest: list[dict[str, Any]]


@dataclass
class TopPages:
    stage: str
    rows: list[dict[str, Any]]


@dataclass
class RunData:
    run_dir: str
    declared: bool
    run_info: dict[str, Any]
    final_stage: str | None
    stages: list[StageInfo]
    histograms: list[ScoreHistogram] = field(default_factory=list)
    iterations: list[IterationSummary] = field(default_factory=list)
    domains: DomainSummary | None = None
    annotation: AnnotationReviewSummary | None = None
    contamination: ContaminationSummary | None = None
    dedup: DedupSummary | None = None
    top_pages: TopPages | None = None
    export: dict[str, Any] | None = None
    export_dir: str | None = None
    notes: list[str] = field(default_factory=list)


# --- reading -------------------------------------------------------------------------------------------


def _dataset(path: str) -> Any:
    import pyarrow.dataset as ds

    return ds.dataset(fs.local_path(path), format="parquet", ignore_prefixes=[".", "_"])


def _batches(path: str, columns: list[str]) -> Iterator[pa.RecordBatch]:
    dataset = _dataset(path)
    present = [c for c in columns if c in dataset.schema.names]
    yield from dataset.to_batches(columns=present, batch_size=65_536)


def _has_columns(path: str, *columns: str) -> bool:
    return all(c in _dataset(path).schema.names for c in columns)


def _selection_cutoff(manifest: Manifest | None) -> tuple[float | None, str]:
    """The score at which a selection cut: the budget boundary's score, else the threshold."""
    if manifest is None:
        return None, ""
    extra = manifest.extra or {}
    if extra.get("cutoff_score") is not None:
        return float(extra["cutoff_score"]), "cut-off score"
    boundary = extra.get("boundary") or {}
    if boundary.get("math_score") is not None:
        budget = extra.get("token_budget")
        return float(boundary["math_score"]), f"token budget {budget:,} boundary" if budget else "budget boundary"
    if extra.get("min_score") is not None:
        return float(extra["min_score"]), "threshold"
    select = (manifest.config or {}).get("select") or {}
    if select.get("min_score") is not None:
        return float(select["min_score"]), "threshold"
    return None, ""


def score_histogram(stage_path: str, bins: int = HISTOGRAM_BINS) -> tuple[list[float], list[int], int, int, list[str]]:
    if not _has_columns(stage_path, "math_score"):
        raise ValueError("the stage has no math_score column")
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts = np.zeros(bins, dtype=np.int64)
    outside = missing = 0
    models: set[str] = set()
    for batch in _batches(stage_path, ["math_score", "model_id"]):
        column = batch.column(batch.schema.get_field_index("math_score"))
        missing += column.null_count
        values = column.drop_null().to_numpy(zero_copy_only=False).astype(np.float64)
        inside = (values >= 0.0) & (values <= 1.0)
        outside += int((~inside).sum())
        counts += np.histogram(values[inside], bins=edges)[0]
        if "model_id" in batch.schema.names:
            models.update(v for v in pc.unique(batch.column(batch.schema.get_field_index("model_id"))).to_pylist() if v)
    return edges.tolist(), counts.tolist(), outside, missing, sorted(models)


def _sum_column(stage_path: str, column: str) -> int | None:
    if not _has_columns(stage_path, column):
        return None
    table = _dataset(stage_path).to_table(columns=[column])
    return int(pc.sum(table.column(column)).as_py() or 0)


def domain_summary(layout: RunLayout, stage: str) -> DomainSummary:
    path = layout.path(stage)
    manifest = layout.manifest(stage)
    config = manifest.config if manifest else {}
    table = _dataset(path).to_table()
    flagged = int(pc.sum(table.column("flagged")).as_py() or 0) if "flagged" in table.schema.names else 0
    top = table.sort_by([("pages_collected", "descending"), ("pages_seen", "descending"), ("domain", "ascending")])
    prefixes: list[dict[str, Any]] = []
    prefix_path = fs.join(path, PREFIXES_DIR)
    if fs.exists(prefix_path):
        prefix_table = _dataset(prefix_path).to_table()
        ordered = prefix_table.sort_by([("pages_collected", "descending"), ("prefix", "ascending")])
        prefixes = ordered.slice(0, TOP_DOMAINS).to_pylist()
    return DomainSummary(
        stage=stage,
        iteration=iteration_of(stage),
        key=str((config or {}).get("key") or (manifest.extra if manifest else {}).get("key") or "domain"),
        threshold=float((config or {}).get("flag_threshold") or DEFAULT_FLAG_THRESHOLD),
        domains=table.num_rows,
        flagged=flagged,
        top=top.slice(0, TOP_DOMAINS).to_pylist(),
        prefixes=prefixes,
    )


def _annotation_store(layout: RunLayout) -> str:
    loop = (layout.config.get("loop") or {}) if isinstance(layout.config, dict) else {}
    return str(loop.get("annotations") or "annotations")


def annotation_summary(layout: RunLayout, stage: str, store_root: str | None = None) -> AnnotationReviewSummary:
    """The flagged domains of a domains stage as the review shows them (samples) with their current labels.

    The labels come from the run's annotation store (`loop.annotations`, relative paths from the working
    directory, as `curate run` reads them): the report shows the decisions of a round, the store's git diff the
    changes."""
    from curate.annotate.patterns import PatternMatcher
    from curate.annotate.stats import build_queue, load_stats
    from curate.annotate.store import AnnotationStore

    root = Path(store_root or _annotation_store(layout))
    labels = AnnotationStore(root).labels() if root.is_dir() else {}
    matcher = PatternMatcher(labels)
    queue = build_queue(load_stats(Path(fs.local_path(layout.path(stage)))))
    domains = []
    for item in queue.items[:TOP_DOMAINS]:
        hit = matcher.match(item.pattern)
        inner = sorted(
            (pattern, label)
            for pattern, label in labels.items()
            if pattern != item.pattern
            and (pattern.partition("/")[0] == item.pattern or pattern.partition("/")[0].endswith("." + item.pattern))
        )
        domains.append(
            AnnotationDomain(
                domain=item.pattern,
                pages_seen=item.pages_seen,
                pages_collected=item.pages_collected,
                collected_fraction=item.collected_fraction,
                label=hit[1] if hit else None,
                label_pattern=hit[0] if hit else None,
                inner_labels=inner,
                samples=[
                    {"url": s.url, "title": s.title, "snippet": s.snippet, "collected": s.collected}
                    for s in item.samples
                ],
            )
        )
    return AnnotationReviewSummary(stage, str(root), root.is_dir(), len(labels), domains)


def contamination_summary(layout: RunLayout, stage: str) -> ContaminationSummary:
    hits = _dataset(fs.join(layout.path(stage), CONTAMINATION_DIR)).to_table()
    per_benchmark: dict[str, dict[str, int]] = {}
    if hits.num_rows:
        grouped = hits.group_by("benchmark").aggregate(
            [([], "count_all"), ("doc_id", "count_distinct"), ("item_id", "count_distinct")]
        )
        for row in sorted(grouped.to_pylist(), key=lambda r: str(r["benchmark"])):
            per_benchmark[str(row["benchmark"])] = {
                "documents": row["doc_id_count_distinct"],
                "hits": row["count_all"],
                "items": row["item_id_count_distinct"],
            }
    ordered = hits.sort_by([("benchmark", "ascending"), ("doc_id", "ascending"), ("offset", "ascending")])
    examples = ordered.slice(0, CONTAMINATION_EXAMPLES).to_pylist()
    documents = len(pc.unique(hits.column("doc_id"))) if hits.num_rows else 0
    return ContaminationSummary(stage, documents, per_benchmark, examples)


def dedup_summary(layout: RunLayout, stage: str) -> DedupSummary:
    removed = _dataset(fs.join(layout.path(stage), DUPLICATES_DIR)).to_table(columns=["cluster_id", "kept_doc_id"])
    if removed.num_rows == 0:
        return DedupSummary(stage, 0, 0, [(label, 0) for label, _, _ in CLUSTER_BINS], [])
    grouped = removed.group_by(["cluster_id", "kept_doc_id"]).aggregate([([], "count_all")])
    # DUPLICATES lists the removed documents; the kept one makes the cluster one bigger.
    sizes = grouped.column("count_all").to_numpy() + 1
    bins = [(label, int(((sizes >= low) & (sizes <= high)).sum())) for label, low, high in CLUSTER_BINS]
    largest = grouped.append_column("size", pa.array(sizes)).sort_by(
        [("size", "descending"), ("cluster_id", "ascending")]
    )
    return DedupSummary(stage, grouped.num_rows, removed.num_rows, bins, largest.slice(0, 10).to_pylist())


def top_pages(stage_path: str, stage: str, k: int = TOP_PAGES) -> TopPages | None:
    """The k highest-scoring pages of a stage (ties: smallest doc_id), with the start of their text."""
    if not _has_columns(stage_path, "doc_id", "math_score"):
        return None

    def best(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(rows, key=lambda r: (-r["math_score"], r["doc_id"]))[:k]

    kept: list[dict[str, Any]] = []
    columns = ["doc_id", "url", "registered_domain", "host", "math_score", "text"]
    for batch in _batches(stage_path, columns):
        table = pa.Table.from_batches([batch])
        table = table.filter(pc.is_valid(table.column("math_score")))
        if table.num_rows == 0:
            continue
        # select_k breaks ties arbitrarily, so take the k-th score and every row at or above it.
        top = table.take(pc.select_k_unstable(table, k, [("math_score", "descending")]))
        floor = pc.min(top.column("math_score"))
        for row in table.filter(pc.greater_equal(table.column("math_score"), floor)).to_pylist():
            row["snippet"] = (row.pop("text", None) or "")[:SNIPPET_CHARS]
            kept.append(row)
        kept = best(kept)
    return TopPages(stage, kept)


# --- the whole run -------------------------------------------------------------------------------------


def _try(notes: list[str], what: str, function: Any, *args: Any) -> Any:
    """Run one section's reader; a stage that cannot be read becomes a note on the page, not a crash."""
    try:
        return function(*args)
    except (OSError, ValueError, KeyError, pa.ArrowException, CurateError) as exc:
        log.warning("report: %s: %s", what, exc)
        notes.append(f"{what}: could not be read ({type(exc).__name__}: {exc})")
        return None


def _export_location(layout: RunLayout) -> str:
    configured = ((layout.config.get("export") or {}) if isinstance(layout.config, dict) else {}).get("out")
    return str(configured) if configured else fs.join(layout.run_dir, "export")


def collect_run(run_dir: str) -> RunData:
    if not fs.is_local(run_dir):
        raise CurateError(
            f"{run_dir}: the report reads local run directories; copy the run (without its Parquet) first"
        )
    if not Path(fs.local_path(run_dir)).is_dir():
        raise CurateError(f"{run_dir} is not a directory: pass the --run directory of a curate run")
    layout = RunLayout.load(run_dir)
    info: dict[str, Any] = {}
    run_json = fs.read_text(fs.join(run_dir, "run.json"))
    if run_json is not None:
        info = json.loads(run_json)
    data = RunData(
        run_dir=run_dir,
        declared=layout.declared,
        run_info=info,
        final_stage=layout.final_stage,
        stages=[StageInfo(stage, layout.manifest(stage)) for stage in layout.stages],
    )
    notes = data.notes

    scores = dict(layout.iteration_stages(registry.SCORE))
    selects = dict(layout.iteration_stages(registry.SELECT))
    domains = dict(layout.iteration_stages(registry.DOMAINS))
    results = {r.get("iteration"): r for r in info.get("iteration_results") or [] if isinstance(r, dict)}
    for iteration in sorted(set(scores) | set(selects) | set(domains)):
        select_manifest = layout.manifest(selects[iteration]) if iteration in selects else None
        cutoff, source = _selection_cutoff(select_manifest)
        if iteration in scores:
            read = _try(notes, f"scores of {scores[iteration]}", score_histogram, layout.path(scores[iteration]))
            if read is not None:
                edges, counts, outside, missing, models = read
                data.histograms.append(
                    ScoreHistogram(
                        iteration, scores[iteration], models, edges, counts, outside, missing, cutoff, source
                    )
                )
        tokens, tokens_source = None, ""
        if iteration in selects:
            tokens = _try(
                notes, f"tokens of {selects[iteration]}", _sum_column, layout.path(selects[iteration]), "n_tokens"
            )
            tokens_source = "n_tokens of the selected pages"
            if tokens is None and select_manifest is not None:
                extra = select_manifest.extra or {}
                boundary = extra.get("boundary") or {}
                tokens = extra.get("tokens", boundary.get("cum_tokens"))
                tokens_source = "select manifest" if tokens is not None else "not counted"
        score_manifest = layout.manifest(scores[iteration]) if iteration in scores else None
        domain_manifest = layout.manifest(domains[iteration]) if iteration in domains else None
        data.iterations.append(
            IterationSummary(
                iteration=iteration,
                scored=score_manifest.rows_out if score_manifest else None,
                selected=select_manifest.rows_out if select_manifest else None,
                tokens=tokens,
                tokens_source=tokens_source,
                rule=f"{source} {cutoff:.4f}" if cutoff is not None else "",
                flagged_domains=(domain_manifest.extra or {}).get("flagged_domains") if domain_manifest else None,
                overlap_with_previous=(results.get(iteration) or {}).get("overlap_with_previous"),
            )
        )
    if domains:
        last = domains[max(domains)]
        data.domains = _try(notes, f"domain statistics of {last}", domain_summary, layout, last)
        data.annotation = _try(notes, f"annotation review of {last}", annotation_summary, layout, last)

    decontam = layout.with_side_table(CONTAMINATION_DIR)
    if decontam is not None:
        data.contamination = _try(notes, f"contamination hits of {decontam}", contamination_summary, layout, decontam)
    dedup = layout.with_side_table(DUPLICATES_DIR)
    if dedup is not None:
        data.dedup = _try(notes, f"near-duplicate clusters of {dedup}", dedup_summary, layout, dedup)

    final = layout.resolve_final_stage()
    data.final_stage = final
    if final is not None:
        data.top_pages = _try(notes, f"top pages of {final}", top_pages, layout.path(final), final)

    from curate.stages.export import read_export_manifest

    export_dir = _export_location(layout)
    data.export_dir = export_dir
    data.export = read_export_manifest(export_dir) if fs.is_local(export_dir) else None
    return data
