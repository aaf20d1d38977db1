"""The interactive annotator driven through a real pseudo-terminal: screens, prefix keys, seed growth, undo, resume.

Two sets of statistics. A real run: iteration 1 of `curate run` on the real HTML pages of ../shared/data, whose
domains stage output the review reads as a user's would, and whose seed expansion stage then adds exactly the
pages the screen promised. And statistics built here from real URLs and texts (llm-webkit's math sites,
StackMathQA, trafilatura's evaluation pages) with the domains stage's own key functions, in the stage's layout
(`_prefixes/`, `_samples/`, `_uncollected/`), large enough for undo, skip and resume, with hostile bytes in a snippet.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pexpect
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.annotate.patterns import domain_key, matches, split_url, url_prefixes
from curate.schema import DOMAIN_SAMPLES, DOMAIN_STATS, PREFIX_STATS, UNCOLLECTED_PAGES
from curate.stages.registry import PREFIXES_DIR, SAMPLES_DIR, UNCOLLECTED_DIR
from curate.steps.urls import registered_domain

# Crawled text is hostile: a title-setting OSC and a clear-screen CSI hidden in one real snippet must reach the
# terminal as inert text.
HOSTILE = "\x1b]0;pwned\x07\x1b[2J"


def real_pages(shared: Path) -> list[tuple[str, str, bool]]:
    """(url, text, collected) for real pages: math sites count as collected, trafilatura's news pages do not, and
    every third StackMathQA question is left uncollected, as a classifier would miss some."""
    pages = []
    bench = shared / "html/llm-webkit-bench"
    for line in (bench / "config/data_math_config.jsonl").read_text(encoding="utf-8").splitlines():
        pages.append((json.loads(line)["url"], "", True))
    for path in sorted((bench / "data/groundtruth").glob("*.jsonl")):
        record = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
        pages.append((record["url"], record.get("content") or "", path.name.startswith("math")))
    number = 0
    for path in sorted((shared / "math-text/stackmathqa/data/stackmathqa100k").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            pages.append((record["meta"]["url"], record["Q"], number % 3 != 2))
            number += 1
    evaldata = json.loads((shared / "html/trafilatura-tests/evaldata.json").read_text(encoding="utf-8"))
    pages.extend((url, "", False) for url in evaldata)
    return pages


def write_domain_stats(pages: list[tuple[str, str, bool]], out: Path, samples: int = 3) -> None:
    domains: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    prefixes: dict[tuple[str, str], list] = {}
    sides: dict[str, list[dict]] = defaultdict(list)
    uncollected = []
    for number, (url, text, collected) in enumerate(pages):
        host = split_url(url)[0]
        domain = domain_key(registered_domain(host)) if host else None
        if domain is None:
            continue
        domains[domain][0] += 1
        domains[domain][1] += collected
        for prefix in url_prefixes(url, 2, domain):
            entry = prefixes.setdefault((domain, prefix), [0, 0, []])
            entry[0] += 1
            entry[1] += collected
            entry[2].append((url, text[:300]))
        title, _, rest = text.strip().partition("\n")
        sides[domain].append(
            {"domain": domain, "doc_id": f"d{number:06d}", "url": url, "collected": collected, "title": title[:120]}
            | {"snippet": rest.strip()[:240]}
        )
        if not collected:
            uncollected.append({"registered_domain": domain, "url": url})
    flagged = {d for d, (_, c) in domains.items() if c > 0}
    domain_rows = [
        {"domain": d, "pages_seen": s, "pages_collected": c, "collected_fraction": c / s, "flagged": d in flagged}
        for d, (s, c) in sorted(domains.items())
    ]
    prefix_rows = []
    for (domain, prefix), (seen, collected, found) in sorted(prefixes.items()):
        chosen = sorted(found)[:samples]
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
    sample_rows = [
        row
        for domain in sorted(flagged)
        for side in (True, False)
        for row in [r for r in sides[domain] if r["collected"] == side][:samples]
    ]
    for sub, schema, rows in (
        ("", DOMAIN_STATS, domain_rows),
        (PREFIXES_DIR, PREFIX_STATS, prefix_rows),
        (SAMPLES_DIR, DOMAIN_SAMPLES, sample_rows),
        (UNCOLLECTED_DIR, UNCOLLECTED_PAGES, [u for u in uncollected if u["registered_domain"] in flagged]),
    ):
        (out / sub).mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), out / sub / "part-00000.parquet")


@pytest.fixture(scope="module")
def pages(shared_data: Path) -> list[tuple[str, str, bool]]:
    found = real_pages(shared_data)
    # The hostile bytes ride in the first uncollected MathOverflow question, which the first screen shows.
    for i, (url, text, collected) in enumerate(found):
        if url.startswith("https://mathoverflow.net/questions/") and not collected:
            title, _, rest = text.partition("\n")
            found[i] = (url, title + "\n" + HOSTILE + rest, collected)
            break
    return found


@pytest.fixture(scope="module")
def stats_dir(pages: list[tuple[str, str, bool]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("domain-stats")
    write_domain_stats(pages, out)
    return out


def _spawn(stats: Path, root: Path, *extra: str) -> pexpect.spawn:
    env = {**os.environ, "TERM": "dumb", "CURATE_ANNOTATOR": "alice"}
    env.pop("NO_COLOR", None)
    return pexpect.spawn(
        sys.executable,
        ["-m", "curate.cli.annotate", "review", "--stats", str(stats), "--root", str(root), *extra],
        env=env,
        dimensions=(60, 160),
        timeout=30,
        encoding="utf-8",
    )


def _records(root: Path) -> list[dict]:
    path = root / "iter-01" / "alice.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_review_in_a_terminal_prefix_keys_seed_growth_skip_undo_quit_resume(
    pages: list[tuple[str, str, bool]], stats_dir: Path, tmp_path: Path
) -> None:
    uncollected = [url for url, _, collected in pages if not collected]
    questions = sum(matches(url, "mathoverflow.net/questions") for url in uncollected)
    rest_of_site = sum(matches(url, "mathoverflow.net") for url in uncollected) - questions
    assert questions > 100

    root = tmp_path / "annotations"
    child = _spawn(stats_dir, root)
    child.expect("domain mathoverflow.net")
    child.expect("q quit")
    first = child.before
    assert re.search(r" 1 +mathoverflow\.net/questions +627 +418 +66\.7% ", first)  # the prefix table, numbered
    assert re.search(r"uncollected https://mathoverflow\.net/questions/\d+", first)  # samples of both sides
    assert re.search(r"collected +https://mathoverflow\.net/questions/\d+", first)
    assert "]0;pwned" in first  # the hostile bytes are visible as text, and with TERM=dumb rich emits no escapes
    assert "\x1b" not in first  # of its own, so any ESC here would have come from the data

    child.send("1")
    child.expect("target: prefix 1 mathoverflow.net/questions")
    child.expect(f"next seed: m adds {questions:,} uncollected pages, n removes 0")
    child.expect("q quit")
    child.send("m")
    child.expect("marked mathoverflow.net/questions math")
    child.expect("domain mathoverflow.net")  # the screen stays for more prefixes
    child.expect(r" 1 +mathoverflow\.net/questions +627 +418 +66\.7% math \(alice\)")  # its label
    child.expect("target: domain mathoverflow.net")
    child.expect(f"next seed: m adds {rest_of_site:,} uncollected pages, n removes 0")
    child.expect("q quit")
    child.send("s")
    child.expect("skipped mathoverflow.net")
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
    child.expect(r"math 1, not-math 0, skipped 1, undone 1; (\d+) domains left")
    left = int(child.match.group(1))
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0

    assert [(r["pattern"], r["label"], r["annotator"]) for r in _records(root)] == [
        ("mathoverflow.net/questions", "math", "alice")
    ]
    progress = json.loads((root / ".review/alice.iter-01.json").read_text(encoding="utf-8"))
    assert progress == {"skipped": ["mathoverflow.net"]}

    # Resume: the domain with a labelled prefix is not offered again.
    child = _spawn(stats_dir, root)
    child.expect(rf"\[{left} left\] domain wordpress.com")
    assert "mathoverflow.net" not in child.before
    child.expect("q quit")
    child.send("n")
    child.expect("marked wordpress.com not-math")
    child.expect("q quit")
    child.send("q")
    child.expect(rf"math 0, not-math 1, skipped 0, undone 0; {left - 1} domains left")
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
        ("mathoverflow.net/questions", "math"),
        ("wordpress.com", "not-math"),
    ]


def test_review_without_statistics_exits_2(tmp_path: Path) -> None:
    child = _spawn(tmp_path / "missing", tmp_path / "annotations")
    child.expect("is not a directory")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 2


# --- on a real run ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_run(spark, shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Iteration 1 of `curate run` (Spark local[2]) on the real pages of ../shared/data/html wrapped into a WARC:
    ingest, dedup, training on StackMathQA and OpenStax, scoring, selection and the domains stage."""
    from support.warcs import real_pages as html_pages
    from support.warcs import write_warc

    from curate.pipeline import PipelineConfig, run_pipeline
    from curate.stage import RunContext

    base = tmp_path_factory.mktemp("real-run")
    warc = base / "pages.warc.gz"
    write_warc(html_pages(shared_data), warc)
    config = PipelineConfig.from_dict(
        {
            "train": {
                "seed": [str(shared_data / "math-text/stackmathqa"), str(shared_data / "math-text/openstax-calculus")],
                "bucket": 20_000,
                "dim": 16,
                "max_per_class": 400,
            },
            "select": {},
            "loop": {"iterations": 1, "annotations": str(base / "annotations")},
            "decontaminate": {"enabled": False},
            "export": {"enabled": False},
        }
    )
    run_dir = base / "run"
    run_pipeline(RunContext(str(run_dir)).use_session(spark), [str(warc)], config)
    return run_dir


def _uncollected_urls(run_dir: Path) -> list[str]:
    """Pages iteration 1 scored but did not select, read straight from the two stages' Parquet."""
    from curate.stage_rows import read_stage_table

    iteration = run_dir / "iter-01"
    kept = set(read_stage_table(str(iteration / "03_math_select"), ["doc_id"]).column("doc_id").to_pylist())
    scored = read_stage_table(str(iteration / "02_math_score"), ["doc_id", "url"]).to_pylist()
    return [row["url"] for row in scored if row["doc_id"] not in kept]


@pytest.mark.spark
@pytest.mark.slow
def test_review_of_a_real_run_shows_samples_and_prefixes_and_the_seed_a_prefix_adds(
    real_run: Path, tmp_path: Path
) -> None:
    from curate.annotate.store import AnnotationStore
    from curate.stage import Inputs, RunContext
    from curate.stage_rows import read_stage_table
    from curate.stages.seed import run_seed_expansion

    stats = real_run / "iter-01" / "04_domains"
    domains = read_stage_table(str(stats)).to_pylist()
    prefixes = read_stage_table(str(stats / PREFIXES_DIR)).to_pylist()
    uncollected = _uncollected_urls(real_run)
    assert uncollected
    # The review's order: flagged domains, most pages first. The target is the first real domain (not the
    # placeholder host of pages without a known URL) with a listed prefix that holds uncollected pages.
    queue = sorted((r for r in domains if r["flagged"]), key=lambda r: (-r["pages_seen"], r["domain"]))
    assert 0 < len(queue) < len(domains)
    target = target_prefix = None
    for row in queue:
        listed = [p for p in prefixes if p["domain"] == row["domain"]]
        listed.sort(key=lambda p: (-p["pages_seen"], -p["pages_collected"], p["prefix"]))
        open_prefixes = [p for p in listed[:9] if any(matches(url, p["prefix"]) for url in uncollected)]
        if row["domain"] != "unknown-url.invalid" and open_prefixes:
            target, target_prefix = row["domain"], open_prefixes[0]["prefix"]
            break
    assert target is not None and target_prefix is not None
    expected = sum(matches(url, target_prefix) for url in uncollected)

    root = tmp_path / "annotations"
    child = _spawn(stats, root)
    for row in queue[: queue.index(next(r for r in queue if r["domain"] == target))]:
        child.expect(f"domain {re.escape(row['domain'])}")
        child.expect("q quit")
        child.send("s")
    child.expect(f"domain {re.escape(target)}")
    child.expect("q quit")
    screen = child.before
    assert re.search(rf"(collected|uncollected) +https?://\S*{re.escape(target)}/", screen)  # sample pages
    found = re.search(rf"^\W*(\d) +{re.escape(target_prefix)} +\d+ +\d+ ", screen, re.MULTILINE)  # prefix table
    assert found is not None, screen
    child.send(found.group(1))
    child.expect(f"target: prefix {found.group(1)} {re.escape(target_prefix)}")
    child.expect(r"next seed: m adds ([\d,]+) uncollected pages")
    assert int(child.match.group(1).replace(",", "")) == expected > 0
    child.expect("q quit")
    child.send("m")
    child.expect(f"marked {re.escape(target_prefix)} math")
    child.expect("q quit")
    child.send("q")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0

    # The seed expansion stage, run on the same run with the saved label, adds exactly what the screen said.
    labels = AnnotationStore(root).labels(up_to_iteration=1)
    assert labels == {target_prefix: "math"}
    ctx = RunContext(str(real_run), runner="local")
    iteration = real_run / "iter-01"
    inputs = Inputs("iter-01/05_seed", stages=(str(iteration / "02_math_score"), str(iteration / "03_math_select")))
    assert run_seed_expansion(ctx, inputs, labels).rows_out == expected
