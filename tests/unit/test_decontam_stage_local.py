"""The decontamination stage with the local runner: documents, rejects, contamination rows, manifest."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.decontam import BENCHMARKS, check_stage, planted_documents
from support.runs import commit_table_as_stage

from curate.errors import ConfigError
from curate.stage import Inputs, RunContext
from curate.stages.decontam import DecontamConfig, run_decontaminate


@pytest.mark.parametrize("mode", ["drop", "cut"])
def test_local_stage(shared_data: Path, tmp_path: Path, mode: str) -> None:
    table, plants = planted_documents(shared_data)
    ctx = RunContext(str(tmp_path / "run"), runner="local")
    source = commit_table_as_stage(ctx, "03_near_dedup", table)
    config = DecontamConfig(only=BENCHMARKS, data_root=str(shared_data), mode=mode)
    inputs = Inputs("90_decontaminate", stages=(source,))
    manifest = run_decontaminate(ctx, inputs, config)
    check_stage(ctx.stage_dir(manifest.stage), table, plants, mode)
    # The same stage again is skipped; the index is reused from the run directory.
    again = run_decontaminate(ctx, inputs, config)
    assert again.created == manifest.created
    assert len(list(Path(tmp_path / "run" / "_decontam_index").glob("*.npz"))) == 1


def test_stage_configuration_errors(shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = RunContext(str(tmp_path / "run"), runner="local")
    monkeypatch.delenv("CURATE_SHARED_DATA", raising=False)
    with pytest.raises(ConfigError, match="data_root"):
        run_decontaminate(ctx, Inputs("clean", stages=(str(tmp_path),)), DecontamConfig(only=BENCHMARKS))
    with pytest.raises(ConfigError, match="unknown benchmark"):
        config = DecontamConfig(only=["nope"], data_root=str(shared_data))
        run_decontaminate(ctx, Inputs("clean", stages=(str(tmp_path),)), config)
    with pytest.raises(ConfigError, match="mode"):
        DecontamConfig(mode="erase")


def test_cli_decontaminate_local_runner(shared_data: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from curate.cli.main import app

    table, plants = planted_documents(shared_data, clean=12)
    ctx = RunContext(str(tmp_path / "run"), runner="local")
    commit_table_as_stage(ctx, "03_near_dedup", table)
    args = [
        "decontaminate",
        "-o",
        ctx.run_dir,
        "-s",
        "03_near_dedup",
        "--local-runner",
        "--data-root",
        str(shared_data),
    ]
    for name in BENCHMARKS:
        args += ["--only", name]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "contamination (drop mode)" in result.output and "mgsm_zh" in result.output
    check_stage(ctx.stage_dir("90_decontaminate"), table, plants, "drop")
