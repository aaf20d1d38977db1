"""The annotation store (validation, atomic appends, latest-wins) and URL-pattern matching."""

from __future__ import annotations

import json
import multiprocessing
import pickle
from pathlib import Path

import pyarrow as pa
import pytest

from curate.annotate.patterns import PatternError, PatternMatcher, matches, normalize_pattern, split_url
from curate.annotate.store import (
    Annotation,
    AnnotationStore,
    read_pattern_file,
    utc_now,
)
from curate.errors import ConfigError, InputError

# --- store: validation ------------------------------------------------------------------------------------------

GOOD = {
    "pattern": "mathoverflow.net/questions",
    "label": "math",
    "annotator": "alice",
    "time": "2024-05-01T10:00:00.000000Z",
    "iteration": 1,
    "note": None,
}


def _write_lines(root: Path, lines: list[str], annotator: str = "alice", iteration: int = 1) -> Path:
    path = root / f"iter-{iteration:02d}" / f"{annotator}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _line(**changes: object) -> str:
    record = {**GOOD, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not ...})


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ('{"pattern": "a.org", "label": "math"', "bad JSON"),
        ("[1, 2]", "expected a JSON object"),
        (_line(label=...), "missing field 'label'"),
        (_line(time=...), "missing field 'time'"),
        (_line(label="maths"), "unknown label 'maths'"),
        (_line(lable="math"), "unknown field 'lable'"),
        (_line(pattern="has space.org/x"), "bad pattern"),
        (_line(pattern="*.example.org"), "bad pattern"),
        (_line(pattern="https://MathOverflow.net/questions/"), "not normalised (write 'mathoverflow.net/questions')"),
        (_line(pattern="/questions"), "has no host"),
        (_line(time="2024-05-01 10:00"), "bad time"),
        (_line(time="2024-05-01T10:00:00+02:00"), "bad time"),
        (_line(iteration=0), "bad iteration 0"),
        (_line(iteration="1"), "bad iteration '1'"),
        (_line(iteration=2), "iteration 2 does not match directory iter-01"),
        (_line(annotator="bob"), "annotator 'bob' does not match file alice.jsonl"),
        (_line(note=5), "field 'note' must be a string"),
    ],
)
def test_a_malformed_line_names_file_line_and_reason(tmp_path: Path, bad_line: str, reason: str) -> None:
    path = _write_lines(tmp_path, [_line(), "", bad_line, _line(pattern="a.org")])
    store = AnnotationStore(tmp_path)
    with pytest.raises(InputError) as caught:
        store.read()
    assert caught.value.location == f"{path}:3"
    assert reason in caught.value.reason
    count, errors = store.validate()
    assert count == 2
    assert [e.location for e in errors] == [f"{path}:3"]


def test_non_utf8_line_is_reported(tmp_path: Path) -> None:
    path = _write_lines(tmp_path, [_line()])
    with open(path, "ab") as handle:
        handle.write(b'{"pattern": "caf\xe9.org"}\n')
    _, errors = AnnotationStore(tmp_path).validate()
    assert errors[0].location == f"{path}:2"
    assert "not UTF-8" in errors[0].reason


def test_append_after_an_unterminated_line_starts_a_new_line(tmp_path: Path) -> None:
    path = _write_lines(tmp_path, [_line()])
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"pattern": "half')  # what a crash or a careless edit leaves
    store = AnnotationStore(tmp_path)
    store.add("b.org", "math", annotator="alice", iteration=1)
    count, errors = store.validate()
    assert count == 2
    assert [e.location for e in errors] == [f"{path}:2"]


def test_add_normalises_and_round_trips(tmp_path: Path) -> None:
    store = AnnotationStore(tmp_path)
    record, receipt = store.add(
        "HTTPS://www.MathOverflow.net/questions/?tab=votes#top", "math", annotator="alice", iteration=3, note="MO é"
    )
    assert record.pattern == "mathoverflow.net/questions"
    assert receipt.path == tmp_path / "iter-03" / "alice.jsonl"
    (loaded,) = store.read()
    assert (loaded.pattern, loaded.label, loaded.annotator, loaded.iteration, loaded.note) == (
        "mathoverflow.net/questions",
        "math",
        "alice",
        3,
        "MO é",
    )
    assert loaded.location == f"{receipt.path}:1"
    assert store.iterations() == [3]


def test_a_record_stays_on_one_line_whatever_the_note(tmp_path: Path) -> None:
    store = AnnotationStore(tmp_path)
    note = "a\nb\u2028c\u2029d\x85e\x1cf"
    _, receipt = store.add("a.org", "math", annotator="alice", iteration=1, note=note)
    assert len(receipt.path.read_text(encoding="utf-8").splitlines()) == 1
    assert store.read()[0].note == note


@pytest.mark.parametrize("annotator", ["", "../evil", "a b", ".hidden", "x" * 65])
def test_annotator_names_must_be_safe_file_names(tmp_path: Path, annotator: str) -> None:
    with pytest.raises(ConfigError):
        AnnotationStore(tmp_path).add("a.org", "math", annotator=annotator, iteration=1)


def test_add_rejects_unknown_label_and_bad_pattern(tmp_path: Path) -> None:
    store = AnnotationStore(tmp_path)
    with pytest.raises(ConfigError, match="label"):
        store.add("a.org", "probably", annotator="alice", iteration=1)
    with pytest.raises(ConfigError, match="wildcards"):
        store.add("*.example.org", "math", annotator="alice", iteration=1)
    with pytest.raises(ConfigError, match="no host"):
        store.add("https:///x", "math", annotator="alice", iteration=1)
    assert store.files() == []


# --- store: latest wins, tombstones, undo -----------------------------------------------------------------------


def test_latest_record_wins_across_files_and_iterations(tmp_path: Path) -> None:
    _write_lines(tmp_path, [_line(pattern="x.org", label="math", time="2024-05-01T10:00:00Z")], "alice", 1)
    _write_lines(
        tmp_path, [_line(pattern="x.org", label="not-math", time="2024-05-02T10:00:00Z", annotator="bob")], "bob", 1
    )
    _write_lines(tmp_path, [_line(pattern="x.org", label="math", time="2024-05-01T12:00:00Z", iteration=2)], "alice", 2)
    effective = AnnotationStore(tmp_path).effective()
    assert effective["x.org"].label == "not-math"
    assert effective["x.org"].annotator == "bob"


def test_equal_times_break_ties_on_iteration_then_annotator_then_line(tmp_path: Path) -> None:
    same = "2024-05-01T10:00:00Z"
    # zed sorts after alice, so zed's label wins at equal time and iteration, whatever the file order.
    _write_lines(tmp_path, [_line(pattern="x.org", label="math", time=same, annotator="zed")], "zed", 1)
    _write_lines(tmp_path, [_line(pattern="x.org", label="not-math", time=same)], "alice", 1)
    assert AnnotationStore(tmp_path).effective()["x.org"].annotator == "zed"
    # Later line of the same file wins.
    _write_lines(
        tmp_path,
        [
            _line(pattern="y.org", label="math", time=same, annotator="carol"),
            _line(pattern="y.org", label="not-math", time=same, annotator="carol"),
        ],
        "carol",
    )
    # "+00:00" and "Z" are the same instant: the tie rule, not string order, decides.
    _write_lines(
        tmp_path,
        [
            _line(pattern="z.org", label="math", time="2024-05-01T10:00:00+00:00", iteration=3),
            _line(pattern="z.org", label="not-math", time="2024-05-01T10:00:00Z", iteration=3),
        ],
        "alice",
        3,
    )
    effective = AnnotationStore(tmp_path).effective()
    assert effective["y.org"].label == "not-math"
    assert effective["z.org"].label == "not-math"


def test_remove_appends_a_tombstone_and_keeps_history(tmp_path: Path) -> None:
    store = AnnotationStore(tmp_path)
    store.add("x.org", "not-math", annotator="alice", iteration=1)
    store.add("x.org/math", "math", annotator="alice", iteration=1)
    store.remove("x.org", annotator="bob", iteration=1, note="whole site is fine")
    assert list(store.effective()) == ["x.org/math"]
    assert [r.label for r in store.read()] == ["not-math", "math", "removed"]
    assert (tmp_path / "iter-01" / "alice.jsonl").read_text().count("\n") == 2  # alice's file untouched
    with pytest.raises(ConfigError, match="no annotation"):
        store.remove("x.org", annotator="bob", iteration=1)
    store.add("x.org", "math", annotator="bob", iteration=1)
    assert store.effective()["x.org"].label == "math"


def test_undo_truncates_only_the_last_append(tmp_path: Path) -> None:
    store = AnnotationStore(tmp_path)
    store.add("a.org", "math", annotator="alice", iteration=1)
    _, receipt = store.add("b.org", "math", annotator="alice", iteration=1)
    assert store.undo(receipt)
    assert list(store.effective()) == ["a.org"]
    assert not store.undo(receipt)  # already gone
    _, first = store.add("c.org", "math", annotator="alice", iteration=1)
    store.add("d.org", "math", annotator="alice", iteration=1)
    assert not store.undo(first)  # something was written after it: refuse rather than lose d.org
    assert list(store.effective()) == ["a.org", "c.org", "d.org"]


# --- store: concurrent writers ----------------------------------------------------------------------------------


def _append_many(root: str, annotator: str, worker: int, count: int) -> None:
    store = AnnotationStore(root)
    for i in range(count):
        # A long note makes each write several KB, well past where unlocked appends start to interleave.
        store.add(f"w{worker}.example.org/p{i}", "math", annotator=annotator, iteration=1, note="x" * 5000)


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    workers, per_worker = 4, 200
    context = multiprocessing.get_context("spawn")
    # Two processes per annotator: same-file contention (flock) and different files at once.
    jobs = [
        context.Process(target=_append_many, args=(str(tmp_path), "alice" if w % 2 else "bob", w, per_worker))
        for w in range(workers)
    ]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(timeout=300)
        assert job.exitcode == 0
    store = AnnotationStore(tmp_path)
    count, errors = store.validate()
    assert errors == []
    assert count == workers * per_worker
    patterns = {r.pattern for r in store.read()}
    assert patterns == {f"w{w}.example.org/p{i}" for w in range(workers) for i in range(per_worker)}
    for path in store.files():
        assert path.read_bytes().endswith(b"\n")


# --- import files -----------------------------------------------------------------------------------------------


def test_read_pattern_file_csv_and_jsonl(tmp_path: Path) -> None:
    csv_file = tmp_path / "patterns.csv"
    csv_file.write_text(
        "pattern,label,note,extra\n"
        "https://math.stackexchange.com/questions/,math,SE,1\n"
        '"mathoverflow.net",,"multi\nline note",2\n'
        "mathoverflow.net/,math,dup,3\n",
        encoding="utf-8",
    )
    rows = read_pattern_file(csv_file, default_label="math")
    assert [(r.pattern, r.label) for r in rows] == [
        ("math.stackexchange.com/questions", "math"),
        ("mathoverflow.net", "math"),
    ]
    assert rows[1].note == "multi\nline note"

    jsonl = tmp_path / "patterns.jsonl"
    jsonl.write_text('{"pattern": "a.org", "label": "math"}\n\n{"pattern": "a.org/", "label": "not-math"}\n')
    with pytest.raises(InputError) as caught:
        read_pattern_file(jsonl)
    assert caught.value.location == f"{jsonl}:3"
    assert "labelled math" in caught.value.reason

    missing = tmp_path / "nolabel.jsonl"
    missing.write_text('{"pattern": "a.org"}\n')
    with pytest.raises(InputError, match="missing field 'label'"):
        read_pattern_file(missing)

    headerless = tmp_path / "bare.csv"
    headerless.write_text("a.org,math\n")
    with pytest.raises(InputError, match="header"):
        read_pattern_file(headerless)


def test_timestamps_are_utc_iso8601() -> None:
    stamp = utc_now()
    assert stamp.endswith("Z") and "T" in stamp
    Annotation("a.org", "math", "alice", stamp, 1).order_key()


# --- patterns ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("mathoverflow.net/questions", "mathoverflow.net/questions"),
        ("https://MathOverflow.NET/questions/", "mathoverflow.net/questions"),
        ("http://www.example.org:8080/a//b/?q=1#frag", "example.org/a/b"),
        ("user:pw@example.org/x", "example.org/x"),
        ("example.org.", "example.org"),
        ("www.com", "www.com"),
        ("en.wikipedia.org/wiki/%ce%ba", "en.wikipedia.org/wiki/%CE%BA"),
        ("bücher.de/Mathe", "xn--bcher-kva.de/Mathe"),
        ("192.168.0.1/x", "192.168.0.1/x"),
        ("schwimmverband.at/news-artikel tx_news", "schwimmverband.at/news-artikel%20tx_news"),  # real: evaldata
        ("en.wikipedia.org/wiki/κ", "en.wikipedia.org/wiki/%CE%BA"),
        ("x.org/wiki/*", "x.org/wiki/*"),  # '*' is an ordinary path character, never a wildcard
    ],
)
def test_normalize_pattern(text: str, canonical: str) -> None:
    assert normalize_pattern(text) == canonical


@pytest.mark.parametrize("text", ["", "   ", "/questions", "a b.org", "*.org", "exa_mple!.org", "tab\t.org", "-x.org"])
def test_bad_patterns_say_why(text: str) -> None:
    with pytest.raises(PatternError) as caught:
        normalize_pattern(text)
    assert str(caught.value)


@pytest.mark.parametrize(
    ("url", "pattern", "expected"),
    [
        ("https://site.com/q", "site.com/q", True),
        ("https://site.com/q/", "site.com/q", True),
        ("https://site.com/q/123?x=1", "site.com/q", True),
        ("https://site.com/questions", "site.com/q", False),  # segment boundary
        ("https://site.com/q", "site.com/questions", False),
        ("https://site.com/Q/1", "site.com/q", False),  # paths are case-sensitive
        ("https://SITE.com/q/1", "site.com/q", True),  # hosts are not
        ("https://math.stackexchange.com/questions/1", "stackexchange.com", True),  # subdomains
        ("https://mathstackexchange.com/questions/1", "stackexchange.com", False),  # label boundary
        ("https://fox.org/", "x.org", False),
        ("https://www.x.org/math", "x.org/math", True),
        ("https://x.org/math", "www.x.org/math", True),
        ("https://x.org", "x.org/math", False),
        ("https://x.org/?p=math", "x.org/math", False),  # queries never match
        ("https://x.org:443/math/a", "x.org/math", True),
        ("//x.org/math/a", "x.org/math", True),  # scheme-relative
        ("https://user:pw@x.org/math", "x.org/math", True),
        ("https://x.org#/math", "x.org/math", False),
        ("https://en.wikipedia.org/wiki/%CE%BA", "en.wikipedia.org/wiki/%ce%ba", True),
        ("https://en.wikipedia.org/wiki/κ/x", "en.wikipedia.org/wiki/%ce%ba", True),
        ("not a url", "x.org", False),
        ("", "x.org", False),
    ],
)
def test_matches(url: str, pattern: str, expected: bool) -> None:
    assert matches(url, pattern) is expected


def test_split_url_survives_hostile_urls() -> None:
    assert split_url("http://[::1") == ("", "")
    assert split_url("https://a.org/%zz/x") == ("a.org", "/%zz/x")


def test_longest_prefix_wins() -> None:
    matcher = PatternMatcher(
        {
            "x.org": "not-math",
            "x.org/math": "math",
            "x.org/math/blog": "not-math",
            "stackexchange.com": "not-math",
            "math.stackexchange.com": "math",
            "x.org/physics": "math",
            "sub.x.org": "not-math",
        }
    )
    assert matcher.match("https://x.org/") == ("x.org", "not-math")
    assert matcher.match("https://x.org/math/algebra/1") == ("x.org/math", "math")
    assert matcher.match("https://x.org/math/blog/2024") == ("x.org/math/blog", "not-math")
    assert matcher.match("https://x.org/mathematics") == ("x.org", "not-math")
    assert matcher.match("https://math.stackexchange.com/questions/1") == ("math.stackexchange.com", "math")
    assert matcher.match("https://stats.stackexchange.com/questions/1") == ("stackexchange.com", "not-math")
    assert matcher.match("https://sub.x.org/math/1") == ("sub.x.org", "not-math")  # a subdomain is its own site
    assert matcher.match("https://deep.sub2.x.org/physics") == ("x.org/physics", "math")
    assert matcher.match("https://y.org/math") is None
    assert matcher.match(None) is None
    assert len(matcher) == 7


def test_matcher_pickles_and_labels_arrow_columns() -> None:
    matcher = PatternMatcher({"mathoverflow.net/questions": "math", "example.org": "not-math"})
    clone = pickle.loads(pickle.dumps(matcher))
    urls = pa.chunked_array([["https://mathoverflow.net/questions/7", None], ["https://example.org/a"]])
    labels = clone.label_array(urls)
    assert labels.type == pa.string()
    assert labels.to_pylist() == ["math", None, "not-math"]


def test_matcher_on_real_urls(shared_data: Path) -> None:
    urls = [
        json.loads(line)["meta"]["url"]
        for path in sorted((shared_data / "math-text/stackmathqa/data/stackmathqa100k").glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]
    evaldata = json.loads((shared_data / "html/trafilatura-tests/evaldata.json").read_text(encoding="utf-8"))
    matcher = PatternMatcher(
        {"mathoverflow.net/questions": "math", "stackexchange.com": "math", "stats.stackexchange.com": "not-math"}
    )
    labels = matcher.labels(urls)
    hosts = [split_url(url)[0] for url in urls]
    for host, label in zip(hosts, labels, strict=True):
        assert label == ("not-math" if host == "stats.stackexchange.com" else "math")
    assert labels.count("math") == hosts.count("mathoverflow.net") + hosts.count("physics.stackexchange.com")
    # A label on a registered domain covers every subdomain, wanted or not: the one stackexchange page among the
    # trafilatura news pages is about German grammar, which is why prefix suggestions list hosts separately.
    hits = {url: matcher.match(url) for url in evaldata if matcher.match(url)}
    assert [split_url(url)[0] for url in hits] == ["german.stackexchange.com"]
    assert list(hits.values()) == [("stackexchange.com", "math")]
