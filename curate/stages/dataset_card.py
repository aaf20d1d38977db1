"""The export's dataset card: `README.md` in the Hugging Face dataset-card convention, generated from the manifests.

The YAML front matter declares the shards (`configs` / `data_files`), so `datasets.load_dataset(<export dir>)` reads
them, and the split size. The body tells a reader what went in and what was removed: sources, each stage's counts
and drop reasons, the classifier, decontamination per benchmark, near-dedup parameters, and how to reproduce it.
Every figure is copied from a stage manifest or the export manifest; nothing is recomputed here.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from curate.io import fs
from curate.manifest import Manifest
from curate.run_layout import RUN_JSON, RunLayout
from curate.stages import registry

CARD_FILE = "README.md"
# The pages' own copyright stays with their publishers; curate records no licence per page.
LICENCE_NOTE = (
    "curate records no licence per page: crawled pages remain under their publishers' copyright. "
    "Check the terms of each source below before redistributing."
)


def _size_category(rows: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < limit:
            return name
    return "n>1M"


def _find(value: Any, key: str) -> Any:
    """The first value under `key` anywhere in a nested manifest section (step configs nest by step name)."""
    if isinstance(value, dict):
        if key in value:
            return value[key]
        for child in value.values():
            found = _find(child, key)
            if found is not None:
                return found
    if isinstance(value, list):
        for child in value:
            found = _find(child, key)
            if found is not None:
                return found
    return None


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text.replace("|", "\\|").replace("\n", " ")


def _drops(manifest: Manifest) -> str:
    return ", ".join(f"{reason} {count:,}" for reason, count in manifest.drops.items()) or "-"


def front_matter(export: dict[str, Any], title: str) -> dict[str, Any]:
    return {
        "pretty_name": title,
        "tags": ["math", "common-crawl", "pretraining", "curate"],
        "size_categories": [_size_category(export["rows"])],
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "data/*.parquet"}]}],
        "dataset_info": {"splits": [{"name": "train", "num_examples": export["rows"]}]},
    }


def _stage_section(layout: RunLayout, manifests: dict[str, Manifest]) -> list[str]:
    lines = [
        "## Stages: records in, out and dropped",
        "",
        "Each stage balances: records in = records out + records dropped (by reason).",
        "",
        "| stage | in | out | dropped (by reason) | balanced |",
        "|---|---:|---:|---|---|",
    ]
    for stage, manifest in manifests.items():
        balanced = "yes" if manifest.balanced else "NO"
        lines.append(
            f"| {stage} | {manifest.rows_in:,} | {manifest.rows_out:,} | {_cell(_drops(manifest))} | {balanced} |"
        )
    missing = [stage for stage in layout.stages if stage not in manifests]
    if missing:
        lines += ["", f"Declared but not finished: {', '.join(missing)}."]
    return lines


def _sources_section(manifests: dict[str, Manifest], run_info: dict[str, Any]) -> list[str]:
    lines = ["## Sources and licences", "", LICENCE_NOTE, ""]
    ingest = next((m for stage, m in manifests.items() if registry.kind_of(stage) is registry.EXTRACT), None)
    inputs = run_info.get("inputs") or (_find(ingest.config, "inputs") if ingest else None)
    if inputs:
        lines.append(f"Input files ({len(inputs)}):")
        lines += [f"- `{path}`" for path in inputs[:50]]
        if len(inputs) > 50:
            lines.append(f"- ... and {len(inputs) - 50} more (run.json lists them all)")
    if ingest is not None:
        licences = _find(ingest.extra, "licenses") or _find(ingest.config, "licenses")
        if licences:
            lines += ["", f"Licences as recorded: {_cell(licences)}"]
        lines += ["", f"Ingest read {ingest.rows_in:,} WARC records and kept {ingest.rows_out:,}."]
    if not inputs:
        lines.append(
            "The input WARC files are recorded by content fingerprint only (the ingest stage's `_manifest.json`); "
            "files with problems are named below."
            if ingest is not None
            else "No ingest manifest in this run: the sources are not recorded."
        )
        for problem in (ingest.problems if ingest is not None else [])[:20]:
            lines.append(f"- `{problem.get('file')}`: {problem.get('reason')}")
    return lines


def _classifier_section(manifests: dict[str, Manifest], run_info: dict[str, Any]) -> list[str]:
    lines = ["## Classifier", ""]
    rows = []
    for stage, manifest in manifests.items():
        kind = registry.kind_of(stage)
        if kind in (registry.TRAIN, registry.SCORE):
            model = _find(manifest.extra, "model_id") or _find(manifest.config, "model_id")
            metrics = _find(manifest.extra, "metrics")
            rows.append(f"| {stage} | model {_cell(model or '-')} | {_cell(metrics) if metrics else '-'} |")
        elif kind is registry.SELECT:
            threshold = _find(manifest.config, "min_score")
            budget = _find(manifest.config, "token_budget")
            cut = f"threshold {threshold}" if threshold is not None else ""
            cut += f"{', ' if cut else ''}token budget {budget:,}" if isinstance(budget, int) else ""
            boundary = _find(manifest.extra, "boundary")
            rows.append(f"| {stage} | {cut or '-'} | {_cell(boundary) if boundary else '-'} |")
    if not rows:
        return [*lines, "Not run: no scoring or selection stage in this run."]
    lines += ["| stage | model / cut-off | metrics / budget boundary |", "|---|---|---|", *rows]
    results = [r for r in run_info.get("iteration_results") or [] if isinstance(r, dict)]
    if results:
        lines += ["", "| iteration | model | collected | overlap with previous |", "|---:|---|---:|---:|"]
        for result in results:
            overlap = result.get("overlap_with_previous")
            lines.append(
                f"| {result.get('iteration')} | {_cell(result.get('model_id') or '-')} | "
                f"{result.get('selected', 0):,} | {'-' if overlap is None else f'{overlap:.1%}'} |"
            )
    return lines


def _decontamination_section(manifests: dict[str, Manifest]) -> list[str]:
    lines = ["## Decontamination", ""]
    found = [(s, m) for s, m in manifests.items() if "contamination" in m.extra]
    if not found:
        return [*lines, "Not run: the corpus was not checked against benchmarks."]
    for stage, manifest in found:
        contamination = manifest.extra["contamination"]
        per_benchmark = contamination.get("per_benchmark", {})
        indexed = manifest.extra.get("index", {}).get("benchmarks", {})
        lines += [
            f"{stage}: mode {contamination.get('mode', '-')}, {contamination.get('documents', 0):,} documents "
            f"removed or cut.",
            "",
            "| benchmark | documents | hits | items hit | items indexed |",
            "|---|---:|---:|---:|---:|",
        ]
        for bench in sorted(set(per_benchmark) | set(indexed)):
            hit = per_benchmark.get(bench, {})
            index = indexed.get(bench, {})
            covered = f"{index['items_covered']:,}/{index['items']:,}" if "items" in index else "-"
            lines.append(
                f"| {bench} | {hit.get('documents', 0):,} | {hit.get('hits', 0):,} | {hit.get('items', 0):,} "
                f"| {covered} |"
            )
    return lines


def _dedup_section(manifests: dict[str, Manifest]) -> list[str]:
    lines = ["## Near-duplicate removal", ""]
    found = [(s, m) for s, m in manifests.items() if registry.kind_of(s) is registry.NEAR_DEDUP]
    if not found:
        return [*lines, "Not run: no near-duplicate stage in this run."]
    for stage, manifest in found:
        parameters = manifest.config.get("dedup", manifest.config)
        lines.append(f"{stage}: parameters `{_cell(parameters)}`.")
        stats = {
            k: manifest.extra[k]
            for k in ("bands", "rows", "candidate_pairs", "edges", "clusters")
            if k in manifest.extra
        }
        if stats:
            lines.append(f"Result: `{_cell(stats)}`.")
    return lines


def _reproduce_section(export: dict[str, Any], run_info: dict[str, Any]) -> list[str]:
    config = run_info.get("config")
    code = export.get("code_version", {})
    return [
        "## How to reproduce",
        "",
        f"curate {code.get('curate', '?')} (git {code.get('git_commit') or 'unknown'}). Each stage manifest "
        "(`_manifest.json` in the run directory) holds its resolved configuration and its hash; a re-run with the "
        "same inputs and configuration skips every finished stage and writes the same shards (same sha256).",
        "",
        "```bash",
        "curate run --input '<the input files above>' --out <run> --config <the configuration below>",
        f"curate export --run <run> --out <dir> --target-shard-mb {export['config']['target_shard_bytes'] / 2**20:g}",
        "```",
        "",
        f"Export configuration (hash {export['config_hash']}): `{_cell(export['config'])}`",
        *([f"Run configuration: `{_cell(config)}`"] if config else []),
    ]


def _files_section(export: dict[str, Any]) -> list[str]:
    lines = [
        "## Files",
        "",
        f"{export['rows']:,} documents, {export['tokens']:,} tokens ({_find(export['token_counter'], 'tokenizer')}), "
        f"{export['bytes']:,} bytes in {len(export['shards'])} shards, ordered by {export['order']}. "
        "`manifest.json` lists every shard with its sha256.",
        "",
        "| shard | rows | bytes | tokens | sha256 |",
        "|---|---:|---:|---:|---|",
    ]
    lines += [
        f"| {s['path']} | {s['rows']:,} | {s['bytes']:,} | {s['tokens']:,} | {s['sha256']} |" for s in export["shards"]
    ]
    return lines


def dataset_card(layout: RunLayout, export: dict[str, Any], run_info: dict[str, Any] | None = None) -> str:
    """The README.md of an export, from the run's stage manifests and the export manifest `export`."""
    run_info = run_info if run_info is not None else _run_info(layout)
    manifests = {stage: m for stage in layout.stages if (m := layout.manifest(stage)) is not None}
    title = f"curate math corpus ({export['source_stage']})"
    body = [
        f"# {title}",
        "",
        f"A math pre-training corpus built by curate from web crawls (a DeepSeekMath-style collection), exported "
        f"{export['created']} from stage `{export['source_stage']}`: {export['rows']:,} documents.",
        "",
        *_sources_section(manifests, run_info),
        "",
        *_stage_section(layout, manifests),
        "",
        *_classifier_section(manifests, run_info),
        "",
        *_decontamination_section(manifests),
        "",
        *_dedup_section(manifests),
        "",
        *_reproduce_section(export, run_info),
        "",
        *_files_section(export),
    ]
    header = yaml.safe_dump(front_matter(export, title), sort_keys=False, allow_unicode=True)
    return f"---\n{header}---\n\n" + "\n".join(body) + "\n"


def _run_info(layout: RunLayout) -> dict[str, Any]:
    text = fs.read_text(fs.join(layout.run_dir, RUN_JSON))
    try:
        info = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    return info if isinstance(info, dict) else {}


def read_front_matter(card: str) -> dict[str, Any]:
    """The YAML block between the leading `---` lines of a card."""
    _, block, _ = card.split("---\n", 2)
    loaded: dict[str, Any] = yaml.safe_load(block)
    return loaded
