"""The non-interactive `curate annotate` verbs through typer's runner: add, list, remove, import, validate, match."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from curate.cli.annotate import app

runner = CliRunner()


def _run(root: Path, *args: str, annotator: str = "alice"):
    return runner.invoke(app, [*args, "--root", str(root)], env={"CURATE_ANNOTATOR": annotator})


def _listed(root: Path) -> list[tuple[str, str]]:
    result = _run(root, "list", "--json")
    assert result.exit_code == 0, result.output
    return [(r["pattern"], r["label"]) for r in map(json.loads, result.stdout.splitlines())]


def test_add_list_remove_match(tmp_path: Path) -> None:
    assert _run(tmp_path, "add", "https://MathOverflow.net/questions/", "--label", "math").exit_code == 0
    assert _run(tmp_path, "add", "x.org", "-l", "not-math", "--note", "news site").exit_code == 0
    assert _run(tmp_path, "add", "x.org/math", "-l", "math", "-i", "2", annotator="bob").exit_code == 0
    assert _listed(tmp_path) == [("mathoverflow.net/questions", "math"), ("x.org", "not-math"), ("x.org/math", "math")]
    assert (tmp_path / "iter-02/bob.jsonl").exists()

    result = _run(tmp_path, "match", "https://www.x.org/math/1", "https://x.org/mathematics", "https://y.org/")
    assert [json.loads(line)["label"] for line in result.stdout.splitlines()] == ["math", "not-math", None]

    assert _run(tmp_path, "remove", "x.org").exit_code == 0  # default iteration: the latest, 2
    assert (tmp_path / "iter-02/alice.jsonl").exists()
    assert _listed(tmp_path) == [("mathoverflow.net/questions", "math"), ("x.org/math", "math")]
    history = _run(tmp_path, "list", "--history", "--json")
    assert [json.loads(line)["label"] for line in history.stdout.splitlines()][-1] == "removed"

    missing = _run(tmp_path, "remove", "never.org")
    assert missing.exit_code == 2
    assert "no annotation to remove" in missing.output


def test_bad_arguments_exit_2(tmp_path: Path) -> None:
    assert _run(tmp_path, "add", "a.org", "-l", "maybe").exit_code == 2
    bad = _run(tmp_path, "add", "*.a.org", "-l", "math")
    assert bad.exit_code == 2 and "wildcards" in bad.output
    assert _run(tmp_path, "add", "a.org", "-l", "math", annotator="../x").exit_code == 2
    assert not tmp_path.joinpath("iter-01").exists()


def test_import_is_all_or_nothing_and_idempotent(tmp_path: Path) -> None:
    good = tmp_path / "seed.csv"
    good.write_text("pattern,label\nmathoverflow.net/questions,math\nmath.stackexchange.com,math\nx.org,not-math\n")
    root = tmp_path / "annotations"
    first = _run(root, "import", str(good))
    assert first.exit_code == 0 and "3 added, 0 unchanged" in first.output
    again = _run(root, "import", str(good))
    assert "0 added, 3 unchanged" in again.output

    bad = tmp_path / "more.jsonl"
    bad.write_text('{"pattern": "a.org", "label": "math"}\n{"pattern": "b.org", "label": "mathematics"}\n')
    result = _run(root, "import", str(bad))
    assert result.exit_code == 1
    assert f"{bad}:2: unknown label 'mathematics'" in result.output
    assert len(_listed(root)) == 3  # a.org was not written either

    labelled = tmp_path / "plain.jsonl"
    labelled.write_text('{"pattern": "b.org"}\n')
    assert _run(root, "import", str(labelled), "--label", "not-math").exit_code == 0
    assert ("b.org", "not-math") in _listed(root)


def test_validate_reports_every_bad_line(tmp_path: Path) -> None:
    _run(tmp_path, "add", "a.org", "-l", "math")
    path = tmp_path / "iter-01/alice.jsonl"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"pattern": "b.org"}\n')
        handle.write("not json\n")
    result = _run(tmp_path, "validate")
    assert result.exit_code == 1
    assert f"{path}:2: missing field 'label'" in result.output
    assert f"{path}:3: bad JSON" in result.output
    assert "1 valid records in 1 files, 2 errors" in result.output
    listing = _run(tmp_path, "list")
    assert listing.exit_code == 1 and f"{path}:2" in listing.output


def test_review_without_a_terminal_says_to_use_add_or_import(tmp_path: Path) -> None:
    # A new session has no controlling terminal, so /dev/tty cannot be opened either: as under cron or CI.
    done = subprocess.run(
        [sys.executable, "-m", "curate.cli.annotate", "review", "--stats", str(tmp_path), "--root", str(tmp_path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        start_new_session=True,
        env={**os.environ, "CURATE_ANNOTATOR": "alice", "COLUMNS": "80"},
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "needs a terminal" in lines[0]
    assert "curate annotate add" in lines[0] and "curate annotate import" in lines[0]


def test_every_command_starts_without_the_review_modules() -> None:
    """`curate` mounts this module for every verb; the review's modules (pyarrow.compute, rich panels: ~50 ms of
    CPU) load only when `review` runs."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, curate.cli.main; print(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert not {"curate.annotate.review", "curate.annotate.stats", "pyarrow.compute"} & set(loaded)
