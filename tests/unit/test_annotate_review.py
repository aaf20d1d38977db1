"""The review queue, its statistics input, terminal sanitising and the key loop (scripted keys, no terminal)."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from curate.annotate.patterns import matches
from curate.annotate.review import ReviewSession, clean_for_terminal
from curate.annotate.stats import DomainStats, build_queue, load_stats
from curate.annotate.store import AnnotationStore
from curate.errors import InputError
from curate.schema import DOMAIN_SAMPLES, DOMAIN_STATS, PREFIX_STATS, UNCOLLECTED_PAGES


def _groundtruth(shared: Path, name: str) -> tuple[str, str]:
    record = json.loads((shared / "html/llm-webkit-bench/data/groundtruth" / name).read_text(encoding="utf-8"))
    return record["url"], record["content"]


def _stackexchange_urls(shared: Path) -> list[str]:
    """Real question URLs: the first five of stats.stackexchange.com and the first four of physics."""
    wanted = {"stats.stackexchange.com": 5, "physics.stackexchange.com": 4}
    urls: list[str] = []
    for path in sorted((shared / "math-text/stackmathqa/data/stackmathqa100k").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            url = json.loads(line)["meta"]["url"]
            host = url.split("/")[2]
            if wanted.get(host, 0) > 0:
                wanted[host] -= 1
                urls.append(url)
        if not any(wanted.values()):
            return urls
    raise AssertionError("StackMathQA holds fewer StackExchange questions than this test needs")


@pytest.fixture
def stats_dir(shared_data: Path, tmp_path: Path) -> Path:
    """A domains stage directory in the stage's layout, on real URLs and texts."""
    se = [
        _groundtruth(shared_data, f"math_{n}.jsonl") for n in ("mathjax_latex_4", "mathjax_latex_5", "stackexchange_1")
    ]
    physics = _groundtruth(shared_data, "math_1.jsonl")
    mhf = _groundtruth(shared_data, "math_mathhelpforum_1.jsonl")
    domains = [
        {"domain": "stackexchange.com", "pages_seen": 40, "pages_collected": 30, "collected_fraction": 0.75},
        {"domain": "mathhelpforum.com", "pages_seen": 90, "pages_collected": 9, "collected_fraction": 0.1},
        {"domain": "chip.de", "pages_seen": 500, "pages_collected": 1, "collected_fraction": 0.002},
    ]
    for row in domains:
        row["flagged"] = row["collected_fraction"] > 0.05
    prefixes = [
        {
            "domain": "stackexchange.com",
            "prefix": "physics.stackexchange.com/questions",
            "pages_seen": 15,
            "pages_collected": 10,
            "collected_fraction": 10 / 15,
            "sample_urls": [physics[0]],
            "sample_snippets": [physics[1][:300]],
        },
        {
            "domain": "stackexchange.com",
            "prefix": "math.stackexchange.com/questions",
            "pages_seen": 20,
            "pages_collected": 20,
            "collected_fraction": 1.0,
            "sample_urls": [url for url, _ in se],
            "sample_snippets": [text[:300] for _, text in se],
        },
        {
            "domain": "mathhelpforum.com",
            "prefix": "mathhelpforum.com/t",
            "pages_seen": 9,
            "pages_collected": 9,
            "collected_fraction": 1.0,
            "sample_urls": [mhf[0]],
            "sample_snippets": [mhf[1][:300]],
        },
    ]
    samples = [
        {"domain": "stackexchange.com", "doc_id": f"d{i}", "url": url, "collected": i % 2 == 0, "title": text[:40]}
        for i, (url, text) in enumerate([*se, physics])
    ]
    for row in samples:
        row["snippet"] = "snippet of " + row["url"]
    # Uncollected pages of the stackexchange.com site: real StackExchange question URLs, math and physics hosts.
    uncollected = [{"registered_domain": "stackexchange.com", "url": url} for url in _stackexchange_urls(shared_data)]
    uncollected.append({"registered_domain": "mathhelpforum.com", "url": mhf[0]})
    for sub, schema, rows in (
        ("", DOMAIN_STATS, domains),
        ("_prefixes", PREFIX_STATS, prefixes),
        ("_samples", DOMAIN_SAMPLES, samples),
        ("_uncollected", UNCOLLECTED_PAGES, uncollected),
    ):
        (tmp_path / "stats" / sub).mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp_path / "stats" / sub / "part-0.parquet")
    (tmp_path / "stats/_rejected").mkdir()
    (tmp_path / "stats/_rejected/part-0.parquet").write_bytes(b"not parquet")  # ignored: not a side table
    return tmp_path / "stats"


def test_queue_has_one_screen_per_flagged_domain_with_prefixes_and_samples(stats_dir: Path) -> None:
    queue = build_queue(load_stats(stats_dir))
    assert [item.pattern for item in queue.items] == ["mathhelpforum.com", "stackexchange.com"]
    se = queue.items[1]
    assert [p.pattern for p in se.prefixes] == [
        "math.stackexchange.com/questions",
        "physics.stackexchange.com/questions",
    ]
    assert [s.collected for s in se.samples] == [True, False, True, False]  # both sides, in turn
    assert se.samples[0].title and se.samples[0].snippet.startswith("snippet of https://")
    # Without _samples/ the prefix samples stand in, side unknown.
    assert queue.items[0].samples[0].collected is None
    assert queue.items[0].samples[0].url.startswith("https://mathhelpforum.com/")
    every = build_queue(load_stats(stats_dir), all_domains=True)
    assert every.items[0].pattern == "chip.de"


def test_load_stats_tells_datasets_apart_by_columns(tmp_path: Path, stats_dir: Path) -> None:
    loaded = load_stats(stats_dir)
    assert (len(loaded.domains), len(loaded.prefixes), len(loaded.samples)) == (3, 3, 4)
    assert loaded.uncollected is not None and len(loaded.uncollected.urls("stackexchange.com")) == 9
    # A prefix dataset written before sample_snippets existed, next to a www-keyed domain table, still loads.
    old = tmp_path / "old"
    old.mkdir()
    domains = [{"domain": "www.mathhelpforum.com", "pages_seen": 9, "pages_collected": 9, "collected_fraction": 1.0}]
    pq.write_table(pa.Table.from_pylist([{**domains[0], "flagged": True}], schema=DOMAIN_STATS), old / "a.parquet")
    old_schema = PREFIX_STATS.remove(PREFIX_STATS.get_field_index("sample_snippets"))
    row = {"domain": "www.mathhelpforum.com", "prefix": "mathhelpforum.com/t", "sample_urls": ["https://x.org/"]}
    pq.write_table(pa.Table.from_pylist([{**domains[0], **row}], schema=old_schema), old / "b.parquet")
    queue = build_queue(load_stats(old))
    assert queue.items[0].pattern == "mathhelpforum.com"
    assert [p.pattern for p in queue.items[0].prefixes] == ["mathhelpforum.com/t"]
    assert queue.items[0].samples[0].snippet == ""

    (old / "broken.parquet").write_bytes(b"PAR1 truncated")
    with pytest.raises(InputError) as caught:
        load_stats(old)
    assert caught.value.location.endswith("broken.parquet")


@pytest.mark.parametrize(
    ("hostile", "shown"),
    [
        ("a\x1b[2J\x1b]0;owned\x07b", "a [2J ]0;owned b"),  # clear screen, set window title
        ("\x9b31mred", "31mred"),  # 8-bit CSI
        ("evil\u202egnp.exe", "evil gnp.exe"),  # right-to-left override
        ("zero\u200bwidth", "zero width"),
        ("line\u2028sep\r\nx\ty", "line sep x y"),
        ("[bold red]markup[/]", "[bold red]markup[/]"),  # kept as text; rich Text never parses it
    ],
)
def test_clean_for_terminal(hostile: str, shown: str) -> None:
    assert clean_for_terminal(hostile) == shown


def test_clean_for_terminal_truncates() -> None:
    assert clean_for_terminal("x" * 500, limit=10) == "x" * 9 + "…"
    assert clean_for_terminal(None) == ""


def _session(store: AnnotationStore, queue, keys: str, **kwargs) -> tuple[ReviewSession, io.StringIO]:
    buffer = io.StringIO()
    feed: Iterator[str] = iter(keys)
    session = ReviewSession(
        store,
        queue,
        annotator="alice",
        iteration=1,
        read_key=lambda: next(feed),
        console=Console(file=buffer, width=160, force_terminal=False),
        **kwargs,
    )
    return session, buffer


def test_seed_change_counts_what_expansion_would_add(stats_dir: Path, shared_data: Path, tmp_path: Path) -> None:
    queue = build_queue(load_stats(stats_dir))
    session, _ = _session(AnnotationStore(tmp_path / "a"), queue, "q")
    urls = _stackexchange_urls(shared_data)
    physics = [u for u in urls if matches(u, "physics.stackexchange.com/questions")]
    assert len(physics) == 4 and len(urls) == 9
    assert session.seed_change("stackexchange.com", {}) == (9, 0)
    assert session.seed_change("physics.stackexchange.com/questions", {}) == (4, 0)
    assert session.seed_change("physics.stackexchange.com/questions", {"stackexchange.com": "math"}) == (0, 4)
    assert session.seed_change("stackexchange.com", {"physics.stackexchange.com": "not-math"}) == (5, 0)
    assert session.seed_change("mathhelpforum.com", {}) == (1, 0)


def test_prefix_keys_domain_keys_skip_undo_quit_then_resume(stats_dir: Path, tmp_path: Path) -> None:
    store = AnnotationStore(tmp_path / "annotations")
    queue = build_queue(load_stats(stats_dir))
    session, out = _session(store, queue, "mxsq")  # x is not a key: a hint, no action
    summary = session.run()
    assert (summary.math, summary.skipped) == (1, 1)
    text = out.getvalue()
    assert "domain mathhelpforum.com" in text and re.search(r" 1 +mathhelpforum\.com/t +9 +9 +100\.0% ", text)
    assert "keys: m math" in text
    assert "target: domain mathhelpforum.com" in text
    assert "next seed: m adds 1 uncollected pages, n removes 0" in text
    assert "next seed: m adds 9 uncollected pages, n removes 0" in text  # stackexchange.com
    assert "uncollected https://" in text and "collected   https://" in text

    # Resume with the skipped domain revisited: pick prefix 2, label it, the screen stays; 9 is no prefix here.
    session, out = _session(store, queue, "29nu1mq", revisit_skipped=True)
    summary = session.run()
    text = out.getvalue()
    assert "domain mathhelpforum.com" not in text  # labelled: done
    assert "target: prefix 2 physics.stackexchange.com/questions" in text
    assert "next seed: m adds 4 uncollected pages, n removes 0" in text
    assert "no prefix 9 on this screen" in text
    assert "marked physics.stackexchange.com/questions not-math" in text
    assert "undone: physics.stackexchange.com/questions" in text
    assert "marked math.stackexchange.com/questions math" in text
    assert text.rindex("domain stackexchange.com") > text.index("marked math.stackexchange.com/questions")
    assert (summary.math, summary.not_math, summary.undone, summary.remaining) == (1, 0, 1, 0)
    assert {p: r.label for p, r in store.effective().items()} == {
        "mathhelpforum.com": "math",
        "math.stackexchange.com/questions": "math",
    }
    progress = json.loads((tmp_path / "annotations/.review/alice.iter-01.json").read_text())
    assert progress == {"skipped": ["stackexchange.com"]}  # --revisit-skipped shows skips again, keeps the file

    # A domain with a labelled prefix is done for alice; another annotator sees the whole queue again.
    session, out = _session(store, queue, "q")
    session.run()
    assert "Review queue done" in out.getvalue()
    bob = ReviewSession(
        store, queue, annotator="bob", iteration=1, read_key=lambda: "q", console=Console(file=io.StringIO())
    )
    assert bob.remaining() == len(queue.items)


def test_undo_walks_back_through_the_session_and_end_of_queue(stats_dir: Path, tmp_path: Path) -> None:
    store = AnnotationStore(tmp_path)
    queue = build_queue(load_stats(stats_dir))
    session, out = _session(store, queue, "mnuuuq")
    summary = session.run()
    assert "Review queue done" in out.getvalue()
    assert "nothing to undo" in out.getvalue()
    assert summary.undone == 2 and summary.remaining == 2
    assert store.read() == []
    assert (tmp_path / "iter-01/alice.jsonl").read_bytes() == b""


def test_ctrl_c_quits_cleanly(tmp_path: Path) -> None:
    store = AnnotationStore(tmp_path)

    def interrupted() -> str:
        raise KeyboardInterrupt

    stats = DomainStats(
        domains=[{"domain": "a.org", "pages_seen": 2, "pages_collected": 1, "collected_fraction": 0.5, "flagged": True}]
    )
    session = ReviewSession(
        store,
        build_queue(stats),
        annotator="alice",
        iteration=1,
        read_key=interrupted,
        console=Console(file=io.StringIO()),
    )
    summary = session.run()
    assert summary.remaining == 1
