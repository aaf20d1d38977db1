"""The whole configuration is typed and range-checked before any work: one line, exit 2, the key path named."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from curate.config import load_config
from curate.errors import ConfigError
from curate.pipeline import PipelineConfig

ROOT = Path(__file__).resolve().parents[2]

# (--set override, what the one-line error must say)
MISTAKES = [
    ("dedup.minhash.threshold=1.5", "minhash.threshold must be in (0, 1), got 1.5"),
    ("dedup.minhash.num_perm=0", "minhash.num_perm must be >= 2, got 0"),
    ("domains.flag_treshold=0.1", "domains.flag_treshold (did you mean domains.flag_threshold?)"),
    ("decontaminate.mode=bogus", "decontaminate.mode must be one of drop, cut, got 'bogus'"),
    ("loop.iterations=0", "loop.iterations must be an integer >= 1, got 0"),
]

MORE_MISTAKES = [
    ("loop.iteratons=2", "loop.iteratons (did you mean loop.iterations?)"),
    ("loop.stop_overlap=1.5", "loop.stop_overlap must be a number in (0, 1]"),
    ("loop.iterations=true", "loop.iterations must be an integer >= 1, got True"),
    ("decontam.mode=drop", "unknown section(s) decontam (did you mean decontaminate?)"),
    ("decontaminate.n=0", "decontaminate.n must be an integer >= 1"),
    ("dedup.minhash.threshhold=0.5", "minhash.threshhold (did you mean minhash.threshold?)"),
    ("dedup.verify=maybe", "dedup.verify must be one of"),
    ("dedup.max_rounds=0", "dedup.max_rounds must be an integer >= 1"),
    ("domains.flag_threshold=0", "domains.flag_threshold must be a number in (0, 1]"),
    ("domains.flag_threshold=fast", "domains.flag_threshold must be float"),
    ("domains.key=url", "domains.key must be host or registered_domain"),
    ("domains.prefix_depth=0", "domains.prefix_depth must be an integer >= 1"),
    ("export.target_shard_mb=0", "export.target_shard_mb must be a number > 0"),
    ("export.target_shard_mb=.nan", "export.target_shard_mb must be a number > 0"),
    ("select.min_scor=0.5", "select.min_scor (did you mean select.min_score?)"),
]


@pytest.mark.parametrize(
    ("override", "message"), MISTAKES + MORE_MISTAKES, ids=[m[0] for m in MISTAKES + MORE_MISTAKES]
)
def test_each_mistake_is_named(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        PipelineConfig.from_dict(load_config(None, [override]), origin="--set flags")
    assert message in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(("override", "message"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_dry_run_rejects_it_in_one_line_before_any_work(override: str, message: str, tmp_path: Path) -> None:
    started = time.monotonic()
    run = ["run", "--input", "nothing.warc.gz", "--out", str(tmp_path / "run"), "--dry-run", "--set", override]
    result = subprocess.run(
        [sys.executable, "-m", "curate.cli.main", *run],
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --set flags: ") and message in lines[0], result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "run").exists()
    # Under 2 s on an idle machine (about 1 s, mostly importing pyarrow); the bound leaves room for a busy one
    # while still catching a Spark session started before the check (a JVM alone takes longer).
    assert elapsed < 6, elapsed


@pytest.mark.parametrize("recipe", ["demo.yaml", "deepseekmath.yaml"])
def test_the_shipped_recipes_are_valid_and_round_trip(recipe: str) -> None:
    config = PipelineConfig.from_dict(load_config(ROOT / "pipelines" / recipe), origin=recipe)
    assert PipelineConfig.from_dict(config.to_dict()) == config
    assert config.dedup.minhash.threshold == pytest.approx(config.to_dict()["dedup"]["minhash"]["threshold"])
