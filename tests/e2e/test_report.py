"""The HTML report in a real browser: headless Chromium renders it without script errors, and crawled
strings carrying markup (`<script>alert(1)</script>` in URLs, text, domains, n-grams) stay text.

Chromium is the Debian package (`apt-get install chromium`; `make setup` installs it when it may). Without it the
rendering test skips with one line saying what to run, except in CI (`CURATE_REQUIRE_BROWSER=1`), where it fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from support.runs import HOSTILE_MARKUP, SyntheticRun, build_synthetic_run

from curate.manifest import read_manifest
from curate.report import build_report, write_report
from curate.stage import Inputs, RunContext
from curate.stages.train import TrainConfig, run_train

ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
ACTIVE_TAGS = {"script", "iframe", "object", "embed", "img", "link", "base", "form", "meta-refresh"}


@pytest.fixture(scope="module")
def hostile_run(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> SyntheticRun:
    run = build_synthetic_run(tmp_path_factory.mktemp("report-run"), shared_data, n_docs=240, hostile=True)
    # A real training stage (tiny model) against the run's own documents, so the classifier section shows what
    # the trainer records: settings and threshold chosen on a held-out seed source, and its out-of-source metrics.
    ctx = RunContext(str(run.run_dir), runner="local")
    seed = [str(shared_data / "math-text/stackmathqa"), str(shared_data / "math-text/openstax-calculus")]
    config = TrainConfig(seed=seed, dim=16, bucket=5_000, max_per_class=200)
    run_train(ctx, Inputs(out="iter-01/01_train", stages=(ctx.stage_dir("03_near_dedup"),)), config)
    return run


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        message = "headless Chromium renders the report; to run this test: sudo apt-get install -y chromium"
        if os.environ.get("CURATE_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return binary


def render(chromium: str, page: Path, profile: Path) -> tuple[str, str]:
    """The DOM after load, and Chromium's log (console messages are logged as CONSOLE lines)."""
    command = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
        "--disable-extensions", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
        "--dump-dom", page.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.handlers: list[tuple[str, str]] = []
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.handlers += [(tag, name) for name, _ in attrs if name.lower().startswith("on")]

    def handle_data(self, data: str) -> None:
        self.texts.append(data)


def test_report_renders_and_hostile_strings_stay_text(hostile_run: SyntheticRun, chromium: str, tmp_path: Path) -> None:
    page = Path(write_report(str(hostile_run.run_dir), str(tmp_path / "report.html")))
    source = page.read_text()
    assert HOSTILE_MARKUP not in source and ESCAPED in source

    dom, log = render(chromium, page, tmp_path / "profile")
    assert "curate run report" in dom
    # The DOM serialiser re-escapes text nodes: the hostile markup is in the page as text, many times over
    # (URL, page text, domain name, benchmark n-gram, SVG labels and tooltips).
    assert dom.count(ESCAPED) >= 5
    elements = _Elements()
    elements.feed(dom)
    assert not ACTIVE_TAGS & set(elements.tags), sorted(ACTIVE_TAGS & set(elements.tags))
    assert elements.handlers == []
    assert sum(HOSTILE_MARKUP in text for text in elements.texts) >= 5
    assert {"svg", "table", "rect", "title"} <= set(elements.tags)
    # No console output at all: no script error, no blocked script (a CSP violation would be logged).
    assert "CONSOLE" not in log, [line for line in log.splitlines() if "CONSOLE" in line]
    assert "Uncaught" not in log and "Refused to" not in log


def test_every_section_has_its_numbers(hostile_run: SyntheticRun) -> None:
    page = build_report(str(hostile_run.run_dir))
    for anchor in ("stages", "scores", "iterations", "domains", "contamination", "dedup", "pages", "export"):
        assert f'id="{anchor}"' in page
    assert "Not run: no export" in page  # this run was never exported
    assert page.count("Not run") == 1
    train = read_manifest(hostile_run.run_dir / "iter-01" / "01_train")
    assert train is not None
    threshold, source = train.extra["threshold"], train.extra["out_of_source"]
    assert threshold["split"] == "held_out_sources" and source["roc_auc"] is not None
    assert f"{threshold['threshold']:.4f} (target precision 0.95 on held-out sources)" in page
    assert f"<td>{source['roc_auc']:.3f}</td>" in page and "openstax-calculus (" in page  # out-of-source AUC
    assert f"<td>{threshold['precision']:.3f} / {threshold['recall']:.3f}</td>" in page
    assert "threshold 0.5000" in page and "token budget" in page  # both cut-off kinds, drawn on the histograms
    assert "near_duplicate 14" in page  # clusters of sizes 2,2,2,3,3,4,5 remove 14 pages
    assert "benchmark_contamination" in page
    assert page.count('class="cut"') >= 3  # two cut-off lines and the domain flag threshold


def test_missing_stages_say_not_run(hostile_run: SyntheticRun, tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    shutil.copytree(hostile_run.run_dir, partial)
    for stage in ("90_decontaminate", "iter-02/04_domains", "iter-01/04_domains", "03_near_dedup"):
        shutil.rmtree(partial / stage)
    page = build_report(str(partial))
    assert "Not run: decontamination" in page
    assert "Not run: near-duplicate removal" in page
    assert "Not run: no domain statistics stage" in page
    # run.json still lists them: the stage table names each as not run.
    assert page.count(">not run<") >= 4

    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copytree(hostile_run.run_dir / "01_extract", bare / "01_extract")
    page = build_report(str(bare))  # no run.json: stages are discovered
    assert "Not run: no scoring stage" in page and "Not run: no iteration" in page
    assert "absent (stages discovered" in page


def test_cli_writes_the_report(hostile_run: SyntheticRun, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from curate.cli.main import app

    out = tmp_path / "nested" / "run-report.html"
    result = CliRunner().invoke(app, ["report", "--run", str(hostile_run.run_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert list(out.parent.iterdir()) == [out]  # the temporary file was renamed, not left behind
