"""Domain keys agree everywhere: the statistics, their prefixes, the review, `annotate match` and seed expansion.

Joined on real URLs (trafilatura's evaluation pages and llm-webkit's ground truth), for host and registered-domain
keys alike: a key the domains stage writes is the pattern the review shows and labels, and that label reaches the
page's URL through `annotate match` and through seed expansion's step.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from curate.annotate.patterns import PatternMatcher, domain_key, normalize_pattern, split_url
from curate.annotate.stats import DomainStats, build_queue
from curate.cli.annotate import app
from curate.stages.domains import DomainKeyStep
from curate.stages.seed import SeedMatchStep
from curate.step import run_steps
from curate.steps.urls import BadUrl, normalize_url, registered_domain


@pytest.fixture(scope="module")
def pages(shared_data: Path) -> list[dict]:
    """Real URLs as ingest leaves them: normalised, with host and registered domain."""
    raw = list(json.loads((shared_data / "html/trafilatura-tests/evaldata.json").read_text(encoding="utf-8")))
    for path in sorted((shared_data / "html/llm-webkit-bench/data/groundtruth").glob("*.jsonl")):
        raw.append(json.loads(path.read_text(encoding="utf-8").splitlines()[0])["url"])
    rows = []
    for url in raw:
        try:
            url = normalize_url(url)
        except BadUrl:
            continue
        host = url.split("/")[2].split(":")[0]
        rows.append({"url": url, "host": host, "registered_domain": registered_domain(host)})
    return rows


def _keyed(pages: list[dict], key: str) -> list[dict]:
    """The domains stage's own key step over the pages (the Python body of its mapInArrow)."""
    table = pa.Table.from_pylist(pages)
    step = DomainKeyStep(key, depth=2)
    out = pa.Table.from_batches(list(run_steps([step], table.to_batches(), table.schema)))
    return out.to_pylist()


@pytest.mark.parametrize("key", ["host", "registered_domain"])
def test_stats_keys_are_the_patterns_the_review_labels_and_the_matcher_applies(pages: list[dict], key: str) -> None:
    keyed = _keyed(pages, key)
    assert len(keyed) == len(pages) > 1000
    assert all(row["domain"] for row in keyed)  # every real URL has a key
    if key == "host":
        www = [row for row in keyed if row["host"].startswith("www.")]
        assert len(www) > 100  # the case the issue found: `www.archive.org` in the table, `archive.org` on screen
        assert all(row["domain"] == row["host"][4:] for row in www)

    by_domain: dict[str, list[dict]] = defaultdict(list)
    for row in keyed:
        domain = row["domain"]
        assert normalize_pattern(domain) == domain  # shown and written by the review exactly as the stats key it
        assert PatternMatcher({domain: "math"}).label(row["url"]) == "math"
        for prefix in row["url_prefixes"]:
            assert normalize_pattern(prefix) == prefix
            assert PatternMatcher({prefix: "math"}).label(row["url"]) == "math"
            host = prefix.partition("/")[0]
            assert host == domain or host.endswith("." + domain)  # a prefix lies inside its domain's screen
            # ... and inside the site whose uncollected pages the review counts for it.
            assert registered_domain(host) == row["registered_domain"]
        by_domain[domain].append(row)

    # The review's queue, built from statistics keyed this way, offers every domain with all its prefixes.
    stats = DomainStats(
        domains=[
            {"domain": d, "pages_seen": len(r), "pages_collected": 0, "collected_fraction": 0.0, "flagged": True}
            for d, r in by_domain.items()
        ],
        prefixes=[
            {"domain": d, "prefix": p, "pages_seen": 1, "pages_collected": 0, "collected_fraction": 0.0}
            for d, rows in by_domain.items()
            for p in sorted({p for r in rows for p in r["url_prefixes"]} - {d})
        ],
    )
    queue = build_queue(stats)
    assert queue.skipped_rows == 0
    assert {item.pattern for item in queue.items} == set(by_domain)
    if key == "registered_domain":
        subdomains = [item for item in queue.items if any("/" not in p.pattern for p in item.prefixes)]
        assert subdomains  # e.g. a blog host under its registered domain is offered on its own


def test_match_and_seed_expansion_find_the_pages_of_a_labelled_key(pages: list[dict], tmp_path: Path) -> None:
    keyed = _keyed(pages, "host")
    # The www. host with the most pages: the review labels its key; `annotate match` and seed expansion must hit.
    counts: dict[str, int] = defaultdict(int)
    for row in keyed:
        if row["host"].startswith("www."):
            counts[row["domain"]] += 1
    domain = min(counts, key=lambda d: (-counts[d], d))
    urls = [row["url"] for row in keyed if row["domain"] == domain]
    assert all(split_url(url)[0] == domain for url in urls)

    runner = CliRunner()
    added = runner.invoke(app, ["add", domain, "-l", "math", "--root", str(tmp_path)], env={"CURATE_ANNOTATOR": "a"})
    assert added.exit_code == 0, added.output
    matched = runner.invoke(app, ["match", *urls, "--root", str(tmp_path)])
    assert [json.loads(line)["pattern"] for line in matched.stdout.splitlines()] == [domain] * len(urls)

    table = pa.table({"url": [row["url"] for row in keyed], "collected": [False] * len(keyed)})
    out = pa.Table.from_batches(list(run_steps([SeedMatchStep({domain: "math"})], table.to_batches(), table.schema)))
    joined = out.filter(pa.compute.is_null(out.column("drop_reason"))).column("url").to_pylist()
    assert sorted(joined) == sorted(urls)
    assert domain_key("WWW." + domain.upper()) == domain
