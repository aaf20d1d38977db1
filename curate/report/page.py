"""The report page: one self-contained HTML file (inline CSS and SVG, no script, nothing fetched).

A Content-Security-Policy meta tag forbids every script, so even markup that slipped through escaping
could not run; escaping (curate.report.html) is what keeps crawled strings text in the first place.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from curate import __version__
from curate.errors import CurateError
from curate.io import fs
from curate.report import svg
from curate.report.classifier import classifier_section
from curate.report.collect import (
    AnnotationReviewSummary,
    ContaminationSummary,
    DedupSummary,
    DomainSummary,
    RunData,
    ScoreHistogram,
    StageInfo,
    TopPages,
    collect_run,
)
from curate.report.html import Markup, el, fmt_float, fmt_int, fmt_pct, join, shorten, void
from curate.stages import registry

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
REPORT_NAME = "report.html"

STYLE = """
:root { color-scheme: light dark; --fg: #1d2330; --muted: #667085; --bg: #ffffff; --line: #d0d5dd;
  --kept: #2e7d32; --a: #3b6fb6; --b: #7aa6e0; --cut: #c62828; --head: #f2f4f7; }
@media (prefers-color-scheme: dark) { :root { --fg: #e4e7ec; --muted: #98a2b3; --bg: #14171f; --line: #344054;
  --kept: #66bb6a; --a: #6e9fe6; --b: #3f6aa8; --cut: #ef5350; --head: #1d2330; } }
body { font: 14px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); margin: 0 auto;
  max-width: 1100px; padding: 16px 24px 48px; }
h1 { font-size: 22px; margin: 8px 0 4px; } h2 { font-size: 18px; margin: 32px 0 8px;
  border-bottom: 1px solid var(--line); padding-bottom: 4px; } h3 { font-size: 15px; margin: 18px 0 6px; }
nav a { margin-right: 12px; color: var(--a); } .muted, .note { color: var(--muted); }
.notrun { color: var(--muted); font-style: italic; border-left: 3px solid var(--line); padding-left: 8px; }
table { border-collapse: collapse; margin: 6px 0 12px; } th, td { border: 1px solid var(--line); padding: 3px 8px;
  vertical-align: top; text-align: left; } th { background: var(--head); } td.n { text-align: right;
  font-variant-numeric: tabular-nums; white-space: nowrap; }
td.url, td.text { max-width: 420px; overflow-wrap: anywhere; } code { font-size: 12px; overflow-wrap: anywhere; }
.bad { color: var(--cut); font-weight: 600; }
svg.chart { display: block; margin: 8px 0 4px; max-width: 100%; height: auto; }
svg .label { font-size: 11px; fill: var(--fg); } svg .muted { font-size: 11px; fill: var(--muted); }
svg .axis { stroke: var(--muted); stroke-width: 1; } svg .cut { stroke: var(--cut); stroke-width: 2;
  stroke-dasharray: 5 3; } svg .cut-label { font-size: 11px; fill: var(--cut); font-weight: 600; }
svg .c0 { fill: var(--a); } svg .c1 { fill: var(--b); } svg .kept { fill: var(--kept); }
svg .d0 { fill: #e57373; } svg .d1 { fill: #ffb74d; } svg .d2 { fill: #ba68c8; } svg .d3 { fill: #4db6ac; }
svg .d4 { fill: #a1887f; } svg .d5 { fill: #90a4ae; }
.legend span { display: inline-block; margin-right: 14px; } .swatch { display: inline-block; width: 10px;
  height: 10px; margin-right: 4px; vertical-align: middle; }
.sw-kept { background: var(--kept); } .sw-d0 { background: #e57373; } .sw-d1 { background: #ffb74d; }
.sw-d2 { background: #ba68c8; } .sw-d3 { background: #4db6ac; } .sw-d4 { background: #a1887f; }
.sw-d5 { background: #90a4ae; }
"""

SECTIONS = [
    ("stages", "Stages"),
    ("scores", "Scores"),
    ("iterations", "Iterations"),
    ("domains", "Domains"),
    ("annotation", "Annotation"),
    ("contamination", "Contamination"),
    ("dedup", "Near-duplicates"),
    ("pages", "Top pages"),
    ("export", "Export"),
]
# What a full `curate run` does, by stage kind: the overview says which of them this run has.
PIPELINE = [
    (registry.EXTRACT, "ingest: WARC records to documents"),
    (registry.URL_DEDUP, "exact URL dedup"),
    (registry.NEAR_DEDUP, "near-duplicate removal (MinHash)"),
    (registry.SCORE, "math classifier scores"),
    (registry.SELECT, "selection (threshold / token budget)"),
    (registry.DOMAINS, "domain statistics"),
    (registry.DECONTAMINATE, "benchmark decontamination"),
]


def _table(headers: list[str] | None, rows: list[list[Any]], numeric: set[int] | None = None) -> Markup:
    """A table; `headers=None` for a two-column list of facts (no header row)."""
    numeric = numeric or set()
    names = headers or []

    def cell_class(index: int) -> str | None:
        if index in numeric:
            return "n"
        return _cell_class(names[index]) if index < len(names) else None

    body = [el("tr", [el("td", cell, class_=cell_class(i)) for i, cell in enumerate(row)]) for row in rows]
    head = el("thead", el("tr", [el("th", h) for h in headers])) if headers else ""
    return el("table", head, el("tbody", body))


def _cell_class(header: str) -> str | None:
    return {"url": "url", "text": "text", "snippet": "text", "n-gram": "text", "sample URLs": "url"}.get(header)


def not_run(what: str) -> Markup:
    return el("p", f"Not run: {what}.", class_="notrun")


def _section(anchor: str, title: str, *body: Any) -> Markup:
    return el("section", el("h2", title), *body, id=anchor)


# --- sections ------------------------------------------------------------------------------------------


def _overview(data: RunData) -> Markup:
    info = data.run_info
    facts = [
        ["run directory", el("code", data.run_dir)],
        ["run.json", "present" if data.declared else "absent (stages discovered from their manifests)"],
        ["status", info.get("status", "–")],
        ["iterations", info.get("iterations", "–")],
        ["final stage", data.final_stage or "–"],
        ["report generated", datetime.now(UTC).isoformat(timespec="seconds") + f" by curate {__version__}"],
    ]
    steps: list[list[Any]] = []
    for kind, label in PIPELINE:
        found = [s.stage for s in data.stages if s.manifest is not None and registry.kind_of(s.stage) is kind]
        steps.append([label, ", ".join(found) if found else el("span", "not run", class_="muted")])
    steps.append(["export (Parquet shards)", data.export_dir if data.export else el("span", "not run", class_="muted")])
    return join([_table(None, facts), el("h3", "Pipeline"), _table(["step", "stages"], steps)])


def _stages(stages: list[StageInfo]) -> Markup:
    if not stages:
        return not_run("no stage of this run has finished")
    rows = []
    bars = []
    reasons = sorted({r for s in stages if s.manifest for r in s.manifest.drops})
    css = {reason: f"d{i % 6}" for i, reason in enumerate(reasons)}
    for info in stages:
        m = info.manifest
        if m is None:
            rows.append([info.stage, el("span", "not run", class_="muted"), "", "", "", "", ""])
            continue
        drops = ", ".join(f"{reason} {count:,}" for reason, count in m.drops.items()) or "–"
        balanced = "yes" if m.balanced else el("span", "NO", class_="bad")
        rows.append(
            [
                info.stage,
                "finished",
                fmt_int(m.rows_in),
                fmt_int(m.rows_out),
                drops,
                balanced,
                fmt_float(m.wall_seconds, 1),
            ]
        )
        segments = [svg.Segment("kept", m.rows_out, "kept")]
        segments += [svg.Segment(reason, count, css[reason]) for reason, count in m.drops.items()]
        bars.append((info.stage, max(m.rows_in, m.rows_out + sum(m.drops.values())), segments))
    legend = el(
        "p",
        el("span", el("span", "", class_="swatch sw-kept"), "kept"),
        [el("span", el("span", "", class_=f"swatch sw-{css[r]}"), r) for r in reasons],
        class_="legend",
    )
    table = _table(
        ["stage", "status", "rows in", "rows out", "dropped (by reason)", "balanced", "seconds"],
        rows,
        numeric={2, 3, 6},
    )
    return join(
        [
            table,
            el("h3", "Where the rows of each stage went"),
            legend,
            svg.share_bars("Rows kept and dropped per stage", bars),
        ]
    )


def _scores(histograms: list[ScoreHistogram]) -> Markup:
    if not histograms:
        return not_run("no scoring stage (iter-NN/*_score) has finished")
    parts = []
    for h in histograms:
        total = sum(h.counts) + h.outside + h.missing
        label = f"{h.cutoff_source} {h.cutoff:.4f}" if h.cutoff is not None else ""
        parts.append(el("h3", f"Iteration {h.iteration}: {h.stage}"))
        parts.append(
            el(
                "p",
                f"{fmt_int(total)} pages scored by {', '.join(h.model_ids) or 'an unnamed model'}; "
                f"{fmt_int(h.missing)} without a score, {fmt_int(h.outside)} outside [0, 1].",
                class_="note",
            )
        )
        parts.append(
            svg.histogram(
                f"math_score histogram, iteration {h.iteration}", h.edges, h.counts, cutoff=h.cutoff, cutoff_label=label
            )
        )
        if h.cutoff is None:
            parts.append(el("p", "No selection for this iteration: no cut-off to show.", class_="note"))
    return join(parts)


def _iterations(data: RunData) -> Markup:
    if not data.iterations:
        return not_run("no iteration (iter-NN/) has finished")
    rows = [
        [
            it.iteration,
            fmt_int(it.scored),
            fmt_int(it.selected),
            fmt_int(it.tokens),
            it.tokens_source,
            it.rule,
            fmt_int(it.flagged_domains),
            fmt_pct(it.overlap_with_previous),
        ]
        for it in data.iterations
    ]
    table = _table(
        [
            "iteration",
            "pages scored",
            "pages selected",
            "tokens",
            "tokens from",
            "selection",
            "flagged domains",
            "overlap with previous",
        ],
        rows,
        numeric={0, 1, 2, 3, 6, 7},
    )
    pages = [
        (f"iter {it.iteration}", float(it.selected or 0), f"iteration {it.iteration}: {fmt_int(it.selected)} pages")
        for it in data.iterations
    ]
    tokens = [
        (f"iter {it.iteration}", float(it.tokens or 0), f"iteration {it.iteration}: {fmt_int(it.tokens)} tokens")
        for it in data.iterations
    ]
    return join(
        [
            table,
            el("h3", "Pages selected"),
            svg.columns("Pages selected per iteration", pages),
            el("h3", "Tokens selected"),
            svg.columns("Tokens selected per iteration", tokens),
        ]
    )


def _domains(summary: DomainSummary | None) -> Markup:
    if summary is None:
        return not_run(f"no domain statistics stage (iter-NN/{registry.DOMAINS.directory}) has finished")
    intro = el(
        "p",
        f"{summary.stage}: {fmt_int(summary.domains)} domains (by {summary.key}), {fmt_int(summary.flagged)} "
        f"flagged as math-related: more than {fmt_pct(summary.threshold, 0)} of their pages collected "
        "(DeepSeekMath §2.1).",
        class_="note",
    )
    bars = [
        (
            str(row["domain"]),
            float(row["collected_fraction"] or 0),
            f"{row['domain']}: {fmt_int(row['pages_collected'])} of {fmt_int(row['pages_seen'])} pages collected",
        )
        for row in summary.top
    ]
    chart = svg.hbars(
        "Collected fraction of the top domains",
        bars,
        max_value=1.0,
        value_text=fmt_pct,
        threshold=summary.threshold,
        threshold_label=f"flag > {fmt_pct(summary.threshold, 0)}",
    )
    rows = [
        [
            row["domain"],
            fmt_int(row["pages_seen"]),
            fmt_int(row["pages_collected"]),
            fmt_pct(row["collected_fraction"]),
            "yes" if row.get("flagged") else "",
        ]
        for row in summary.top
    ]
    parts = [
        intro,
        chart,
        _table(["domain", "pages seen", "pages collected", "collected", "flagged"], rows, numeric={1, 2, 3}),
    ]
    if summary.prefixes:
        prefix_rows = [
            [
                row["prefix"],
                fmt_int(row["pages_seen"]),
                fmt_int(row["pages_collected"]),
                fmt_pct(row["collected_fraction"]),
                join(el("div", el("code", u)) for u in (row.get("sample_urls") or [])[:3]),
            ]
            for row in summary.prefixes
        ]
        parts += [
            el("h3", "URL prefixes inside flagged domains (for annotation)"),
            _table(
                ["prefix", "pages seen", "pages collected", "collected", "sample URLs"], prefix_rows, numeric={1, 2, 3}
            ),
        ]
    return join(parts)


def _annotation(summary: AnnotationReviewSummary | None) -> Markup:
    """The flagged domains as a person reviewed them: samples (crawled, so escaped like every string) and labels."""
    if summary is None:
        return not_run(f"no domain statistics stage (iter-NN/{registry.DOMAINS.directory}) to annotate")
    store = f"{fmt_int(summary.labels)} labels in {summary.store}" if summary.store_found else "no annotation store"
    parts: list[Any] = [
        el(
            "p",
            f"{summary.stage}: {fmt_int(len(summary.domains))} flagged domains; {store}. Labels are the current "
            "effective annotations (`curate annotate list`); their history is the store's git log.",
            class_="note",
        )
    ]
    for domain in summary.domains:
        if domain.label is None:
            label: Any = el("span", "not labelled", class_="muted")
        elif domain.label_pattern == domain.domain:
            label = domain.label
        else:
            label = f"{domain.label} (via {domain.label_pattern})"
        inner = ", ".join(f"{pattern} {label}" for pattern, label in domain.inner_labels) or "–"
        facts = [
            ["pages seen / collected", f"{fmt_int(domain.pages_seen)} / {fmt_int(domain.pages_collected)}"],
            ["collected", fmt_pct(domain.collected_fraction)],
            ["label", label],
            ["labelled inside", inner],
        ]
        samples = [
            [
                {True: "collected", False: "uncollected"}.get(sample["collected"], "sample"),
                el("code", shorten(sample["url"], 200)),
                shorten(sample["title"], 120),
                shorten(sample["snippet"], 240),
            ]
            for sample in domain.samples
        ]
        parts += [
            el("h3", domain.domain),
            _table(None, facts),
            _table(["page", "url", "title", "snippet"], samples) if samples else el("p", "no samples", class_="note"),
        ]
    return join(parts)


def _contamination(summary: ContaminationSummary | None) -> Markup:
    if summary is None:
        return not_run(
            f"decontamination ({registry.DECONTAMINATE.name()}) has not run: the corpus is not checked against benchmarks"
        )
    if not summary.per_benchmark:
        return el("p", f"{summary.stage}: no benchmark n-gram found in any page.", class_="note")
    bars = [
        (name, float(v["documents"]), f"{name}: {fmt_int(v['documents'])} pages, {fmt_int(v['hits'])} hits")
        for name, v in summary.per_benchmark.items()
    ]
    rows = [
        [name, fmt_int(v["documents"]), fmt_int(v["hits"]), fmt_int(v["items"])]
        for name, v in summary.per_benchmark.items()
    ]
    examples = [
        [
            e.get("benchmark"),
            e.get("item_id"),
            e.get("field"),
            el("code", shorten(e.get("url"), 200)),
            shorten(e.get("ngram"), 200),
        ]
        for e in summary.examples
    ]
    return join(
        [
            el(
                "p",
                f"{summary.stage}: {fmt_int(summary.documents)} pages removed for containing benchmark text.",
                class_="note",
            ),
            svg.hbars("Pages with benchmark n-grams, per benchmark", bars),
            _table(["benchmark", "pages", "hits", "benchmark items"], rows, numeric={1, 2, 3}),
            el("h3", "Examples"),
            _table(["benchmark", "item", "field", "url", "n-gram"], examples),
        ]
    )


def _dedup(summary: DedupSummary | None) -> Markup:
    if summary is None:
        return not_run(f"near-duplicate removal ({registry.NEAR_DEDUP.name()}) has not run")
    bars = [(label, float(count), f"clusters of size {label}: {fmt_int(count)}") for label, count in summary.size_bins]
    largest = [[row["cluster_id"], fmt_int(row["size"]), row["kept_doc_id"]] for row in summary.largest]
    return join(
        [
            el(
                "p",
                f"{summary.stage}: {fmt_int(summary.removed)} pages removed from {fmt_int(summary.clusters)} clusters "
                "(a cluster's size counts the page it kept).",
                class_="note",
            ),
            svg.columns("Near-duplicate cluster sizes", bars, log=True),
            el("h3", "Largest clusters"),
            _table(["cluster", "pages", "kept page (doc_id)"], largest, numeric={1}),
        ]
    )


def _pages(pages: TopPages | None) -> Markup:
    if pages is None:
        return not_run("no scored documents stage to take pages from")
    rows = [
        [
            fmt_float(row["math_score"]),
            row.get("registered_domain") or row.get("host") or "",
            el("code", shorten(row.get("url"), 200)),
            shorten(row.get("snippet"), 240),
        ]
        for row in pages.rows
    ]
    return join(
        [
            el("p", f"The highest-scoring pages of {pages.stage}.", class_="note"),
            _table(["score", "domain", "url", "snippet"], rows, numeric={0}),
        ]
    )


def _export(data: RunData) -> Markup:
    manifest = data.export
    if manifest is None:
        return not_run(f"no export at {data.export_dir} (curate export --run ... --out ...)")
    counter = manifest.get("token_counter") or {}
    facts: list[list[Any]] = [
        ["directory", el("code", data.export_dir)],
        ["source stage", manifest.get("source_stage")],
        ["documents", fmt_int(manifest.get("rows"))],
        ["bytes", fmt_int(manifest.get("bytes"))],
        ["tokens", f"{fmt_int(manifest.get('tokens'))} ({counter.get('tokenizer')})"],
        ["doc_ids sha256", el("code", manifest.get("doc_ids_sha256"))],
        ["config hash", el("code", manifest.get("config_hash"))],
    ]
    shards = [
        [s["name"], fmt_int(s["rows"]), fmt_int(s["bytes"]), fmt_int(s.get("tokens")), el("code", s["sha256"][:16])]
        for s in manifest.get("shards") or []
    ]
    return join(
        [_table(None, facts), _table(["shard", "rows", "bytes", "tokens", "sha256"], shards, numeric={1, 2, 3})]
    )


# --- the page ------------------------------------------------------------------------------------------


def render_report(data: RunData) -> str:
    head = el(
        "head",
        void("meta", charset="utf-8"),
        void("meta", http_equiv="Content-Security-Policy", content=CSP),
        void("meta", name="viewport", content="width=device-width, initial-scale=1"),
        void("meta", name="referrer", content="no-referrer"),
        el("title", f"curate report: {data.run_dir}"),
        el("style", Markup(STYLE)),
    )
    nav = el("nav", [el("a", title, href=f"#{anchor}") for anchor, title in SECTIONS])
    body = el(
        "body",
        el("h1", "curate run report"),
        _overview(data),
        nav,
        _section("stages", "Stages", _stages(data.stages)),
        _section("scores", "Score distribution and cut-off", _scores(data.histograms)),
        _section("classifier", "Classifier: fit, threshold, out-of-source metrics", classifier_section(data.run_dir)),
        _section("iterations", "Pages and tokens per iteration", _iterations(data)),
        _section("domains", "Top domains", _domains(data.domains)),
        _section("annotation", "Annotation: flagged domains, samples and labels", _annotation(data.annotation)),
        _section("contamination", "Benchmark contamination", _contamination(data.contamination)),
        _section("dedup", "Near-duplicate clusters", _dedup(data.dedup)),
        _section("pages", "Top pages of the final corpus", _pages(data.top_pages)),
        _section("export", "Export", _export(data)),
        _section("notes", "Notes", join(el("p", note, class_="bad") for note in data.notes)) if data.notes else "",
    )
    return "<!DOCTYPE html>\n" + el("html", head, body, lang="en") + "\n"


def build_report(run_dir: str) -> str:
    """The report of a run directory as one HTML string."""
    return render_report(collect_run(run_dir))


def write_report(run_dir: str, out_path: str | None = None) -> str:
    """Write the report (default `<run>/report.html`) atomically; returns its path."""
    target = Path(fs.local_path(out_path or fs.join(run_dir, REPORT_NAME)))
    if not fs.is_local(str(target)):
        raise CurateError(f"{out_path}: the report is written to a local file")
    page = build_report(run_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(page)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return str(target)
