"""Domain statistics on real URLs: collected fraction per domain key, the 10% flag, prefix suggestions, sample pages,
and the review's seed-growth count checked against the seed expansion stage itself."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pytest
from rich.console import Console
from support.runs import commit_table_as_stage

from curate.annotate.patterns import domain_key
from curate.annotate.review import ReviewSession
from curate.annotate.stats import build_queue, load_stats
from curate.annotate.store import AnnotationStore
from curate.schema import DOCUMENTS
from curate.stage import Inputs, RunContext
from curate.stage_rows import read_stage_table
from curate.stages.domains import DomainConfig, run_domains
from curate.stages.registry import PREFIXES_DIR, SAMPLES_DIR, UNCOLLECTED_DIR
from curate.stages.seed import run_seed_expansion
from curate.steps.urls import normalize_url, registered_domain

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def pages(shared_data: Path) -> pa.Table:
    urls = sorted(json.loads((shared_data / "html/trafilatura-tests/evaldata.json").read_text()))
    stackmath = []
    for path in sorted((shared_data / "math-text/stackmathqa").rglob("*.jsonl"))[:3]:
        stackmath += [json.loads(line)["meta"]["url"] for line in path.read_text().splitlines() if line.strip()]
    rows = []
    for i, raw in enumerate(urls + stackmath):
        try:
            url = normalize_url(raw)
        except ValueError:
            continue
        host = url.split("/")[2]
        text = f"Title of page {i}\n  body of page {i}"
        rows.append(
            {
                "doc_id": f"d{i:05d}",
                "url": url,
                "host": host,
                "registered_domain": registered_domain(host),
                "text": text,
                "n_chars": len(text),
            }
        )
    return pa.Table.from_pylist(rows, schema=DOCUMENTS)


def test_domain_stats_samples_and_the_reviews_seed_count(spark, pages: pa.Table, tmp_path: Path) -> None:
    ctx = RunContext(str(tmp_path)).use_session(spark)
    scored = commit_table_as_stage(ctx, "scored", pages)
    rows = pages.to_pylist()
    keys = [r["host"] for r in rows if "stackexchange" in r["host"]]
    math_host = max(set(keys), key=keys.count)
    # "Collected": every page of the main StackExchange host, and the first page of every other domain key.
    seen_keys: set[str] = set()
    collected = []
    for row in rows:
        key = domain_key(row["host"])
        if row["host"] == math_host or key not in seen_keys:
            collected.append(row)
        seen_keys.add(key)
    collected_ids = {r["doc_id"] for r in collected}
    selected = commit_table_as_stage(ctx, "selected", pa.Table.from_pylist(collected, schema=DOCUMENTS))

    manifest = run_domains(ctx, Inputs("domains", stages=(scored, selected)), DomainConfig(flag_threshold=0.10))
    stats = {r["domain"]: r for r in read_stage_table(str(tmp_path / "domains")).to_pylist()}
    by_key: dict[str, int] = {}
    for row in rows:
        by_key[domain_key(row["host"])] = by_key.get(domain_key(row["host"]), 0) + 1
    assert set(stats) == set(by_key)
    assert any(r["host"].startswith("www.") for r in rows) and not any(d.startswith("www.") for d in stats)
    for key, count in by_key.items():
        expected = count if key == math_host else 1
        assert stats[key]["pages_seen"] == count
        assert stats[key]["pages_collected"] == expected
        assert stats[key]["flagged"] == (expected / count > 0.10)
    assert stats[math_host]["collected_fraction"] == 1.0
    assert manifest.extra["flagged_domains"] == sum(r["flagged"] for r in stats.values())
    assert manifest.extra["pages_without_domain"] == 0

    prefixes = read_stage_table(str(tmp_path / "domains" / PREFIXES_DIR)).to_pylist()
    questions = [p for p in prefixes if p["prefix"] == f"{math_host}/questions"]
    assert questions and questions[0]["pages_seen"] == by_key[math_host]
    assert 0 < len(questions[0]["sample_urls"]) <= 5
    assert all(p["domain"] in stats and stats[p["domain"]]["flagged"] for p in prefixes)

    # Flagged domains with uncollected pages: their samples show both sides, titled by the text's first line.
    mixed = sorted(d for d, r in stats.items() if r["flagged"] and 0 < r["pages_collected"] < r["pages_seen"])
    assert mixed
    samples = read_stage_table(str(tmp_path / "domains" / SAMPLES_DIR)).to_pylist()
    for domain in mixed:
        mine = [s for s in samples if s["domain"] == domain]
        assert {s["collected"] for s in mine} == {True, False}
        assert all(s["title"].startswith("Title of page ") and s["snippet"].startswith("body of page") for s in mine)
    sites = {r["registered_domain"] for r in rows if stats[domain_key(r["host"])]["flagged"]}
    uncollected = read_stage_table(str(tmp_path / "domains" / UNCOLLECTED_DIR)).to_pylist()
    assert sorted(u["url"] for u in uncollected) == sorted(
        r["url"] for r in rows if r["registered_domain"] in sites and r["doc_id"] not in collected_ids
    )

    # What the review says a label adds to the seed is what seed expansion then adds.
    store = AnnotationStore(tmp_path / "annotations")
    session = ReviewSession(
        store,
        build_queue(load_stats(tmp_path / "domains")),
        annotator="alice",
        iteration=1,
        read_key=lambda: "q",
        console=Console(file=io.StringIO()),
    )
    domain = max(mixed, key=lambda d: (stats[d]["pages_seen"], d))
    item = next(i for i in session.queue.items if i.pattern == domain)
    assert item.prefixes
    gain, _ = session.seed_change(domain, {})
    assert gain == stats[domain]["pages_seen"] - 1
    seeded = run_seed_expansion(ctx, Inputs("seed-domain", stages=(scored, selected)), {domain: "math"})
    assert seeded.rows_out == gain
    prefix = max(item.prefixes, key=lambda p: (p.pages_seen - p.pages_collected, p.pattern)).pattern
    _, loss = session.seed_change(prefix, {domain: "math"})
    assert loss > 0
    narrowed = run_seed_expansion(
        ctx, Inputs("seed-narrowed", stages=(scored, selected)), {domain: "math", prefix: "not-math"}
    )
    assert narrowed.rows_out == gain - loss

    again = run_domains(ctx, Inputs("domains", stages=(scored, selected)), DomainConfig(flag_threshold=0.10))
    assert again.created == manifest.created  # finished stage skipped
