"""Near-dedup configuration and the CLI's dry run: no JVM needed."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from curate.errors import ConfigError
from curate.stages.dedup import DedupConfig, dedup_config


def test_config_from_section_and_errors_name_the_field() -> None:
    config = dedup_config({"minhash": {"threshold": 0.8, "num_perm": 256}, "keep": "text_length desc"})
    assert config.minhash.threshold == 0.8 and config.minhash.num_perm == 256
    assert config.keep == ("text_length desc",)
    assert config.to_dict()["minhash"]["bands"] * config.to_dict()["minhash"]["rows"] <= 256
    assert dedup_config(None) == DedupConfig()
    with pytest.raises(ConfigError, match=r"minhash\.thresh"):
        dedup_config({"minhash": {"thresh": 0.8}}, "run.yaml")
    with pytest.raises(ConfigError, match=r"dedup\.verify"):
        dedup_config({"verify": "exact-ish"})
    with pytest.raises(ConfigError, match=r"dedup\.keep"):
        dedup_config({"keep": ["math_score sideways"]})
    # Values from YAML that are the wrong type or out of range: a named error, not a TypeError.
    with pytest.raises(ConfigError, match=r"dedup\.max_passes"):
        dedup_config({"max_passes": "two"})
    with pytest.raises(ConfigError, match=r"dedup\.max_passes"):
        dedup_config({"max_passes": 0})
    with pytest.raises(ConfigError, match=r"dedup\.min_jaccard_to_kept"):
        dedup_config({"min_jaccard_to_kept": 1.5})
    with pytest.raises(ConfigError, match=r"dedup\.min_jaccard_to_kept"):
        dedup_config({"min_jaccard_to_kept": "high"})
    assert dedup_config({"min_jaccard_to_kept": 0.6, "max_passes": 2}).min_jaccard_to_kept == 0.6


def test_cli_dry_run_prints_resolved_config(tmp_path) -> None:
    from curate.cli.main import app

    result = CliRunner().invoke(
        app, ["dedup", "--out", str(tmp_path), "--set", "dedup.minhash.threshold=0.75", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    resolved = json.loads(result.output)
    assert resolved["dedup"]["minhash"]["threshold"] == 0.75
    assert (resolved["dedup"]["minhash"]["bands"], resolved["dedup"]["minhash"]["rows"]) == (11, 11)
