"""The report's annotation section: flagged domains with their sample pages and current labels, hostile text escaped.

Rendered in headless Chromium when it is installed (as tests/e2e/test_report.py does for the whole page)."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pyarrow as pa
import pytest
from support.runs import HOSTILE_MARKUP, HOSTILE_URL, write_stage_manifest, write_stage_table

from curate.annotate.store import AnnotationStore
from curate.report import build_report, write_report
from curate.schema import DOMAIN_SAMPLES, DOMAIN_STATS
from curate.stages.registry import SAMPLES_DIR

ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.texts.append(data)


@pytest.fixture
def run_dir(shared_data: Path, tmp_path: Path) -> Path:
    record = json.loads(
        (shared_data / "html/llm-webkit-bench/data/groundtruth/math_mathhelpforum_1.jsonl").read_text(encoding="utf-8")
    )
    run = tmp_path / "run"
    stage = run / "iter-01" / "04_domains"
    domains = [
        {"domain": "mathhelpforum.com", "pages_seen": 9, "pages_collected": 6, "collected_fraction": 6 / 9},
        {"domain": "evil.example", "pages_seen": 4, "pages_collected": 2, "collected_fraction": 0.5},
        {"domain": "chip.de", "pages_seen": 50, "pages_collected": 1, "collected_fraction": 0.02},
    ]
    for row in domains:
        row["flagged"] = row["collected_fraction"] > 0.1
    samples = [
        {"domain": "mathhelpforum.com", "doc_id": "d1", "url": record["url"], "collected": True}
        | {"title": record["content"].splitlines()[0], "snippet": record["content"][:200]},
        {"domain": "evil.example", "doc_id": "d2", "url": HOSTILE_URL, "collected": False}
        | {"title": f"Title {HOSTILE_MARKUP}", "snippet": f"text {HOSTILE_MARKUP}"},
    ]
    write_stage_table(stage, pa.Table.from_pylist(domains, schema=DOMAIN_STATS))
    write_stage_table(stage, pa.Table.from_pylist(samples, schema=DOMAIN_SAMPLES), sub=SAMPLES_DIR)
    write_stage_manifest(stage, "iter-01/04_domains", rows_in=3, rows_out=3, config={"key": "host"})
    store = AnnotationStore(tmp_path / "annotations")
    store.add("mathhelpforum.com/t", "math", annotator="alice", iteration=1)
    store.add("example", "not-math", annotator="bob", iteration=1)
    config = {"loop": {"annotations": str(tmp_path / "annotations")}}
    (run / "run.json").write_text(json.dumps({"stages": ["iter-01/04_domains"], "config": config}))
    return run


def test_annotation_section_shows_samples_and_labels_escaped(run_dir: Path) -> None:
    page = build_report(str(run_dir))
    section = page[page.index('id="annotation"') : page.index('id="contamination"')]
    assert "2 flagged domains; 2 labels in" in section
    assert "<h3>mathhelpforum.com</h3>" in section and "<h3>evil.example</h3>" in section
    assert "chip.de" not in section  # not flagged
    assert "mathhelpforum.com/t math" in section  # labelled inside the domain
    assert "not labelled" in section  # mathhelpforum.com itself
    assert "not-math (via example)" in section  # a broader pattern's label reaches the domain
    assert "uncollected" in section and "collected" in section
    assert HOSTILE_MARKUP not in page
    assert section.count(ESCAPED) == 3  # URL, title and snippet
    elements = _Elements()
    elements.feed(page)
    assert "script" not in elements.tags and "img" not in elements.tags
    assert "Title " + HOSTILE_MARKUP in elements.texts


def test_annotation_section_in_chromium(run_dir: Path, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("headless Chromium renders the report; to run this test: sudo apt-get install -y chromium")
    page = Path(write_report(str(run_dir), str(tmp_path / "report.html")))
    command = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--disable-extensions", f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
        "--dump-dom", page.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    elements = _Elements()
    elements.feed(done.stdout)
    assert "script" not in elements.tags and "img" not in elements.tags
    assert "Title " + HOSTILE_MARKUP in elements.texts  # the DOM holds the markup as text
    assert "CONSOLE" not in done.stderr and "Refused to" not in done.stderr
