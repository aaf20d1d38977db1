"""The interactive annotator driven through a real pseudo-terminal: mark, skip, undo, quit, resume.

The domain statistics are built here from real URLs and texts (llm-webkit's math sites, StackMathQA, trafilatura's
evaluation pages), the way the domains stage would: one row per registered domain, one per host + first segment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pexpect
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tldextract

from curate.annotate.patterns import split_url
from curate.schema import DOMAIN_STATS, PREFIX_STATS

# Crawled text is hostile: a title-setting OSC and a clear-screen CSI hidden in one real snippet must reach the
# terminal as inert text.
HOSTILE = "\x1b]0;pwned\x07\x1b[2J"


def real_pages(shared: Path) -> list[tuple[str, str, bool]]:
    """(url, text, collected) for real pages: math sites count as collected, trafilatura's news pages do not."""
    pages = []
    bench = shared / "html/llm-webkit-bench"
    for line in (bench / "config/data_math_config.jsonl").read_text(encoding="utf-8").splitlines():
        pages.append((json.loads(line)["url"], "", True))
    for path in sorted((bench / "data/groundtruth").glob("*.jsonl")):
        record = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
        pages.append((record["url"], record.get("content") or "", path.name.startswith("math")))
    for path in sorted((shared / "math-text/stackmathqa/data/stackmathqa100k").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            pages.append((record["meta"]["url"], record["Q"], True))
    evaldata = json.loads((shared / "html/trafilatura-tests/evaldata.json").read_text(encoding="utf-8"))
    pages.extend((url, "", False) for url in evaldata)
    return pages


def write_domain_stats(shared: Path, out: Path, samples: int = 3) -> None:
    extract = tldextract.TLDExtract(suffix_list_urls=())  # the bundled suffix list: no network
    domains: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    prefixes: dict[tuple[str, str], list] = {}
    for url, text, collected in real_pages(shared):
        host, path = split_url(url)
        if not host:
            continue
        domain = extract(host).top_domain_under_public_suffix or host
        prefix = host + ("/" + path.split("/")[1] if path else "")
        domains[domain][0] += 1
        domains[domain][1] += collected
        entry = prefixes.setdefault((domain, prefix), [0, 0, []])
        entry[0] += 1
        entry[1] += collected
        entry[2].append((url, text[:300]))
    domain_rows = [
        {"domain": d, "pages_seen": s, "pages_collected": c, "collected_fraction": c / s, "flagged": c > 0}
        for d, (s, c) in sorted(domains.items())
    ]
    prefix_rows = []
    for (domain, prefix), (seen, collected, pages) in sorted(prefixes.items()):
        chosen = sorted(pages)[:samples]
        prefix_rows.append(
            {
                "domain": domain,
                "prefix": prefix,
                "pages_seen": seen,
                "pages_collected": collected,
                "collected_fraction": collected / seen,
                "sample_urls": [u for u, _ in chosen],
                "sample_snippets": [t for _, t in chosen],
            }
        )
    (out / "domains").mkdir(parents=True)
    (out / "prefixes").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(domain_rows, schema=DOMAIN_STATS), out / "domains/part-00000.parquet")
    pq.write_table(pa.Table.from_pylist(prefix_rows, schema=PREFIX_STATS), out / "prefixes/part-00000.parquet")


@pytest.fixture(scope="module")
def stats_dir(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("domain-stats")
    write_domain_stats(shared_data, out)
    table = pq.read_table(out / "prefixes").to_pylist()
    for row in table:
        if row["prefix"] == "mathoverflow.net/questions":
            row["sample_snippets"] = [HOSTILE + snippet for snippet in row["sample_snippets"]]
    pq.write_table(pa.Table.from_pylist(table, schema=PREFIX_STATS), out / "prefixes/part-00000.parquet")
    return out


def _spawn(stats: Path, root: Path, *extra: str) -> pexpect.spawn:
    env = {**os.environ, "TERM": "dumb", "CURATE_ANNOTATOR": "alice"}
    env.pop("NO_COLOR", None)
    return pexpect.spawn(
        sys.executable,
        ["-m", "curate.cli.annotate", "review", "--stats", str(stats), "--root", str(root), *extra],
        env=env,
        dimensions=(60, 160),
        timeout=90,
        encoding="utf-8",
    )


def _records(root: Path) -> list[dict]:
    path = root / "iter-01" / "alice.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_review_in_a_terminal_mark_skip_undo_quit_resume(stats_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "annotations"
    child = _spawn(stats_dir, root)
    child.expect("domain mathoverflow.net")
    child.expect("q quit")
    child.send("m")
    child.expect("marked mathoverflow.net math")
    child.expect("prefix mathoverflow.net/questions")
    child.expect("q quit")
    shown = child.before
    assert "]0;pwned" in shown  # the hostile bytes are visible as text, and with TERM=dumb rich emits no escapes
    assert "\x1b" not in shown  # of its own, so any ESC here would have come from the data
    child.send("s")
    child.expect("skipped mathoverflow.net/questions")
    child.expect("domain wordpress.com")
    child.expect("q quit")
    child.send("n")
    child.expect("marked wordpress.com not-math")
    child.expect("q quit")
    child.send("u")
    child.expect("undone: wordpress.com")
    child.expect("domain wordpress.com")
    child.expect("q quit")
    child.send("q")
    child.expect(r"math 1, not-math 0, skipped 1, undone 1; (\d+) suggestions left")
    left = int(child.match.group(1))
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0

    assert [(r["pattern"], r["label"], r["annotator"]) for r in _records(root)] == [
        ("mathoverflow.net", "math", "alice")
    ]
    progress = json.loads((root / ".review/alice.iter-01.json").read_text(encoding="utf-8"))
    assert progress == {"skipped": ["mathoverflow.net/questions"]}

    # Resume: the labelled and the skipped suggestion are not offered again.
    child = _spawn(stats_dir, root)
    child.expect(rf"\[{left} left\] domain wordpress.com")
    assert "mathoverflow.net" not in child.before
    child.expect("q quit")
    child.send("n")
    child.expect("marked wordpress.com not-math")
    child.expect("q quit")
    child.send("q")
    child.expect(rf"math 0, not-math 1, skipped 0, undone 0; {left - 1} suggestions left")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0

    listed = subprocess.run(
        [sys.executable, "-m", "curate.cli.annotate", "list", "--json", "--root", str(root)],
        capture_output=True,
        text=True,
        check=True,
    )
    effective = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["pattern"], r["label"]) for r in effective] == [
        ("mathoverflow.net", "math"),
        ("wordpress.com", "not-math"),
    ]


def test_review_without_statistics_exits_2(tmp_path: Path) -> None:
    child = _spawn(tmp_path / "missing", tmp_path / "annotations")
    child.expect("is not a directory")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 2
