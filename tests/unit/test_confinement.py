"""Stage names are plain names inside the run: `--name` can never reach, or delete, anything outside it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from curate.errors import ConfigError
from curate.manifest import MANIFEST_NAME
from curate.run_lock import holds_run_lock
from curate.stage import Inputs, RunContext, Stage, checked_stage_path, plain_stage_name

CURATE = [sys.executable, "-m", "curate.cli.main"]


@pytest.mark.parametrize("name", ["03_near_dedup", "90_decontaminate", "my-stage.v2", "x"])
def test_plain_names_are_accepted(name: str) -> None:
    assert plain_stage_name(name) == name


@pytest.mark.parametrize(
    "name", ["", ".", "..", "/abs/dir", "a/b", "../up", "a\\b", "_hidden", ".hidden", "-opt", "x.tmp", "x.work", " "]
)
def test_names_that_could_leave_the_run_or_hit_scratch_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="plain directory name"):
        plain_stage_name(name)


def test_nested_stage_paths_are_plain_names_joined(tmp_path: Path) -> None:
    ctx = RunContext(str(tmp_path / "run"), runner="local")
    assert ctx.stage_dir("iter-01/02_math_score") == str(tmp_path / "run" / "iter-01" / "02_math_score")
    for bad in ("iter-01/../../x", "/etc", "iter-01/", "", "iter-01//x"):
        with pytest.raises(ConfigError):
            checked_stage_path(bad)
        with pytest.raises(ConfigError):
            ctx.stage_dir(bad)


def test_a_commit_replaces_an_earlier_stage_but_never_a_foreign_directory(tmp_path: Path) -> None:
    ctx = RunContext(str(tmp_path / "run"), runner="local", force=True)
    foreign = tmp_path / "run" / "notes"
    foreign.mkdir(parents=True)
    (foreign / "thesis.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not a curate stage"), Stage(ctx, Inputs("notes"), config={}, steps=[]):
        pytest.fail("a stage whose directory is not a curate stage must not start")
    assert (foreign / "thesis.txt").read_text() == "keep me"
    assert not holds_run_lock(ctx.run_dir)  # a refused stage does not keep the run locked

    for _ in range(2):  # the second commit replaces the first one's output
        with Stage(ctx, Inputs("01_counts"), config={}, steps=[]) as stage:
            assert holds_run_lock(ctx.run_dir)
            Path(stage.tmp_path).mkdir()
            (Path(stage.tmp_path) / "part-0.txt").write_text("rows")
            stage.finish(rows_in=1, rows_out=1, drops={})
        assert not holds_run_lock(ctx.run_dir)
    assert sorted(p.name for p in (tmp_path / "run" / "01_counts").iterdir()) == [MANIFEST_NAME, "part-0.txt"]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "command",
    [
        ["decontaminate", "--source", "02_url_dedup"],
        ["dedup", "--source", "02_url_dedup"],
        ["classify", "score", "--model", "model.bin"],
        ["classify", "select", "--min-score", "0.5"],
    ],
    ids=["decontaminate", "dedup", "classify-score", "classify-select"],
)
def test_cli_name_outside_the_run_exits_2_and_deletes_nothing(command: list[str], tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "02_url_dedup").mkdir(parents=True)
    (run / "02_url_dedup" / MANIFEST_NAME).write_text("{}")
    (run / "run.json").write_text("{}")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_text("keep me")
    before = _tree(tmp_path)
    for name in ("", str(elsewhere), "../elsewhere"):
        result = subprocess.run(
            [*CURATE, *command, "--out", str(run), "--name", name],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, (name, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: --name"), result.stderr
        assert _tree(tmp_path) == before
