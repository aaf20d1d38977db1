"""The review queue, its statistics input, terminal sanitising and the key loop (scripted keys, no terminal)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from curate.annotate.review import ReviewSession, build_queue, clean_for_terminal, load_stats
from curate.annotate.store import AnnotationStore
from curate.errors import InputError
from curate.schema import DOMAIN_STATS, PREFIX_STATS


def _groundtruth(shared: Path, name: str) -> tuple[str, str]:
    record = json.loads((shared / "html/llm-webkit-bench/data/groundtruth" / name).read_text(encoding="utf-8"))
    return record["url"], record["content"]


@pytest.fixture
def stats_rows(shared_data: Path) -> tuple[list[dict], list[dict]]:
    se = [
        _groundtruth(shared_data, f"math_{n}.jsonl") for n in ("mathjax_latex_4", "mathjax_latex_5", "stackexchange_1")
    ]
    physics = _groundtruth(shared_data, "math_1.jsonl")
    mhf = _groundtruth(shared_data, "math_mathhelpforum_1.jsonl")
    domains = [
        {
            "domain": "stackexchange.com",
            "pages_seen": 40,
            "pages_collected": 30,
            "collected_fraction": 0.75,
            "flagged": True,
        },
        {
            "domain": "mathhelpforum.com",
            "pages_seen": 90,
            "pages_collected": 9,
            "collected_fraction": 0.1,
            "flagged": True,
        },
        {"domain": "chip.de", "pages_seen": 500, "pages_collected": 1, "collected_fraction": 0.002, "flagged": False},
    ]
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
    return domains, prefixes


def test_queue_orders_flagged_domains_by_size_then_prefixes_by_collected(stats_rows) -> None:
    queue = build_queue(*stats_rows)
    assert [(item.kind, item.pattern) for item in queue.items] == [
        ("domain", "mathhelpforum.com"),
        ("prefix", "mathhelpforum.com/t"),
        ("domain", "stackexchange.com"),
        ("prefix", "math.stackexchange.com/questions"),
        ("prefix", "physics.stackexchange.com/questions"),
    ]
    assert queue.domains["stackexchange.com"].samples[0][0].startswith("https://math.stackexchange.com/questions/")
    every = build_queue(*stats_rows, all_domains=True)
    assert every.items[0].pattern == "chip.de"


def test_load_stats_tells_datasets_apart_by_columns(tmp_path: Path, stats_rows) -> None:
    domains, prefixes = stats_rows
    (tmp_path / "a").mkdir()
    (tmp_path / "_rejected").mkdir()
    pq.write_table(pa.Table.from_pylist(domains, schema=DOMAIN_STATS), tmp_path / "a/part-0.parquet")
    # A prefix dataset written before sample_snippets existed still loads.
    old_schema = PREFIX_STATS.remove(PREFIX_STATS.get_field_index("sample_snippets"))
    old_rows = [{k: v for k, v in row.items() if k != "sample_snippets"} for row in prefixes]
    pq.write_table(pa.Table.from_pylist(old_rows, schema=old_schema), tmp_path / "part-1.parquet")
    (tmp_path / "_rejected/part-0.parquet").write_bytes(b"not parquet")  # ignored: underscore directory
    loaded_domains, loaded_prefixes = load_stats(tmp_path)
    assert len(loaded_domains) == 3 and len(loaded_prefixes) == 3
    assert build_queue(loaded_domains, loaded_prefixes).items[1].samples[0][1] == ""

    (tmp_path / "broken.parquet").write_bytes(b"PAR1 truncated")
    with pytest.raises(InputError) as caught:
        load_stats(tmp_path)
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


def _keys(sequence: str) -> Iterator[str]:
    yield from sequence


def _session(store: AnnotationStore, queue, keys: str, **kwargs) -> tuple[ReviewSession, io.StringIO]:
    buffer = io.StringIO()
    feed = _keys(keys)
    session = ReviewSession(
        store,
        queue,
        annotator="alice",
        iteration=1,
        read_key=lambda: next(feed),
        console=Console(file=buffer, width=120, force_terminal=False),
        **kwargs,
    )
    return session, buffer


def test_mark_skip_undo_quit_then_resume(tmp_path: Path, stats_rows) -> None:
    store = AnnotationStore(tmp_path / "annotations")
    queue = build_queue(*stats_rows)
    session, out = _session(store, queue, "mnsxuq")  # x is not a key: a hint, no action
    summary = session.run()
    assert (summary.math, summary.not_math, summary.skipped, summary.undone) == (1, 1, 0, 1)
    assert {p: r.label for p, r in store.effective().items()} == {
        "mathhelpforum.com": "math",
        "mathhelpforum.com/t": "not-math",
    }
    assert "keys: m math" in out.getvalue()
    assert not (tmp_path / "annotations/.review/alice.iter-01.json").exists() or json.loads(
        (tmp_path / "annotations/.review/alice.iter-01.json").read_text()
    ) == {"skipped": []}

    session, out = _session(store, queue, "sq")
    session.run()
    text = out.getvalue()
    assert "domain stackexchange.com" in text  # resumed at the first suggestion alice has not dealt with
    assert "mathhelpforum" not in text
    progress = json.loads((tmp_path / "annotations/.review/alice.iter-01.json").read_text())
    assert progress == {"skipped": ["stackexchange.com"]}

    session, out = _session(store, queue, "q")
    session.run()
    assert "prefix math.stackexchange.com/questions" in out.getvalue()  # the skipped domain stays skipped

    session, out = _session(store, queue, "mmq", revisit_skipped=True)
    session.run()
    text = out.getvalue()
    assert text.index("domain stackexchange.com") < text.index("prefix math.stackexchange.com/questions")
    assert "math via stackexchange.com" in text  # the prefix inherits the domain label just given
    assert store.effective()["math.stackexchange.com/questions"].label == "math"

    # Another annotator sees the whole queue again.
    bob = ReviewSession(
        store, queue, annotator="bob", iteration=1, read_key=lambda: "q", console=Console(file=io.StringIO())
    )
    assert bob.remaining() == len(queue.items)


def test_undo_walks_back_through_the_session_and_end_of_queue(tmp_path: Path, stats_rows) -> None:
    store = AnnotationStore(tmp_path)
    queue = build_queue(*stats_rows)
    session, out = _session(store, queue, "mmmnnuuuuuuq")
    summary = session.run()
    assert "Review queue done" in out.getvalue()
    assert "nothing to undo" in out.getvalue()
    assert summary.undone == 5 and summary.remaining == 5
    assert store.read() == []
    assert (tmp_path / "iter-01/alice.jsonl").read_bytes() == b""


def test_ctrl_c_quits_cleanly(tmp_path: Path, stats_rows) -> None:
    store = AnnotationStore(tmp_path)

    def interrupted() -> str:
        raise KeyboardInterrupt

    session = ReviewSession(
        store,
        build_queue(*stats_rows),
        annotator="alice",
        iteration=1,
        read_key=interrupted,
        console=Console(file=io.StringIO()),
    )
    assert session.run().remaining == 5
