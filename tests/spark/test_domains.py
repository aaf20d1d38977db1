"""Domain statistics on real URLs: collected fraction per host, the 10% flag, prefix suggestions."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from curate.schema import DOCUMENTS
from curate.stage import RunContext, read_stage_table
from curate.stages.domains import PREFIXES_DIR, DomainConfig, run_domains
from curate.steps.urls import normalize_url, registered_domain
from curate.testing.runs import commit_table_as_stage

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
        rows.append(
            {
                "doc_id": f"d{i:05d}",
                "url": url,
                "host": host,
                "registered_domain": registered_domain(host),
                "text": f"page {i}",
                "n_chars": 6,
            }
        )
    return pa.Table.from_pylist(rows, schema=DOCUMENTS)


def test_domain_fractions_flags_and_prefixes(spark, pages: pa.Table, tmp_path: Path) -> None:
    ctx = RunContext(str(tmp_path)).use_session(spark)
    scored = commit_table_as_stage(ctx, "scored", pages)
    hosts = [r["host"] for r in pages.to_pylist() if "stackexchange" in r["host"]]
    math_host = max(set(hosts), key=hosts.count)
    # "Collected": every page of the main StackExchange host, and one page of every other host.
    seen_hosts: set[str] = set()
    collected = []
    for row in pages.to_pylist():
        if row["host"] == math_host or row["host"] not in seen_hosts:
            collected.append(row)
        seen_hosts.add(row["host"])
    selected = commit_table_as_stage(ctx, "selected", pa.Table.from_pylist(collected, schema=DOCUMENTS))

    manifest = run_domains(ctx, "domains", scored, selected, DomainConfig(flag_threshold=0.10))
    stats = {r["domain"]: r for r in read_stage_table(str(tmp_path / "domains")).to_pylist()}
    by_host: dict[str, int] = {}
    for row in pages.to_pylist():
        by_host[row["host"]] = by_host.get(row["host"], 0) + 1
    assert set(stats) == set(by_host)
    for host, count in by_host.items():
        assert stats[host]["pages_seen"] == count
        expected = count if host == math_host else 1
        assert stats[host]["pages_collected"] == expected
        assert stats[host]["flagged"] == (expected / count > 0.10)
    assert stats[math_host]["collected_fraction"] == 1.0
    assert manifest.extra["flagged_domains"] == sum(r["flagged"] for r in stats.values())

    prefixes = read_stage_table(str(tmp_path / "domains" / PREFIXES_DIR)).to_pylist()
    questions = [p for p in prefixes if p["prefix"] == f"{math_host}/questions"]
    assert questions and questions[0]["pages_seen"] == by_host[math_host]
    assert 0 < len(questions[0]["sample_urls"]) <= 5
    assert all(p["domain"] in stats and stats[p["domain"]]["flagged"] for p in prefixes)

    again = run_domains(ctx, "domains", scored, selected, DomainConfig(flag_threshold=0.10))
    assert again.created == manifest.created  # finished stage skipped
