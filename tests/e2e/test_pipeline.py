"""The collection loop on real pages: stop for annotations, resume, seed expansion, retraining, stop rule.

Input: the real HTML pages of ../shared/data/html (math and non-math, with their real URLs) wrapped into a
WARC at test time. Seed: the real StackMathQA and OpenStax math text.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.warcs import real_pages, write_warc

from curate.annotate.store import AnnotationStore
from curate.manifest import read_manifest
from curate.pipeline import PipelineConfig, run_pipeline
from curate.stage import RunContext
from curate.stage_rows import read_stage_table

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def _config(shared_data: Path, annotations: Path, **overrides: dict) -> PipelineConfig:
    raw = {
        "train": {
            "seed": [str(shared_data / "math-text/stackmathqa"), str(shared_data / "math-text/openstax-calculus")],
            "bucket": 100_000,
            "dim": 64,
            "max_per_class": 600,
        },
        # No min_score: each iteration selects at the threshold its model chose for train.target_precision.
        "select": {},
        "loop": {"iterations": 2, "stop_overlap": 0.98, "annotations": str(annotations)},
        "decontaminate": {"enabled": False},
        "export": {"enabled": False},
        **overrides,
    }
    return PipelineConfig.from_dict(raw)


def _host(url: str) -> str:
    host = url.split("/")[2].lower()
    return host[4:] if host.startswith("www.") else host


@pytest.fixture(scope="module")
def warc(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("warc") / "pages.warc.gz"
    write_warc(real_pages(shared_data), path)
    return str(path)


def test_two_iterations_with_scripted_annotations(spark, shared_data: Path, warc: str, tmp_path: Path) -> None:
    annotations = tmp_path / "annotations"
    ctx = RunContext(str(tmp_path / "run")).use_session(spark)
    config = _config(shared_data, annotations)

    first = run_pipeline(ctx, [warc], config)
    assert first.status == "needs_annotations"
    assert "curate annotate" in first.message
    assert not (tmp_path / "run" / "iter-02").exists()
    iteration_one = {m.stage: m for m in first.manifests if m.stage.startswith("iter-01")}
    train_one = iteration_one["iter-01/01_train"].extra
    select_one = iteration_one["iter-01/03_math_select"]
    assert select_one.config["select"]["min_score"] == train_one["threshold"]["threshold"] != 0.5
    assert train_one["fit"]["tuned"] and not train_one["fit"]["degenerate"]

    # Script the annotator: a host with collected and uncollected pages is math, another host is not-math.
    scored = read_stage_table(ctx.stage_dir("iter-01/02_math_score"), columns=["doc_id", "url"]).to_pylist()
    collected = {r["doc_id"] for r in read_stage_table(ctx.stage_dir("iter-01/03_math_select"), ["doc_id"]).to_pylist()}
    by_host: dict[str, list[dict]] = {}
    for row in scored:
        by_host.setdefault(_host(row["url"]), []).append(row)
    uncollected_hosts = sorted(
        (h for h, rows in by_host.items() if any(r["doc_id"] not in collected for r in rows)),
        key=lambda h: (-sum(r["doc_id"] not in collected for r in by_host[h]), h),
    )
    math_host, other_host = uncollected_hosts[0], uncollected_hosts[1]
    store = AnnotationStore(annotations)
    store.add(math_host, "math", annotator="scripted", iteration=1, note="test")
    store.add(other_host, "not-math", annotator="scripted", iteration=1)
    expected_seed = {r["doc_id"] for r in by_host[math_host] if r["doc_id"] not in collected}
    assert expected_seed

    second = run_pipeline(ctx, [warc], config)
    assert second.status in ("complete", "stopped_by_overlap")
    # Iteration 1 was resumed, not redone.
    for stage, manifest in iteration_one.items():
        assert read_manifest(ctx.stage_dir(stage)).created == manifest.created  # type: ignore[union-attr]
    seed = {r["doc_id"] for r in read_stage_table(ctx.stage_dir("iter-01/05_seed"), ["doc_id"]).to_pylist()}
    assert seed == expected_seed
    seed_manifest = read_manifest(ctx.stage_dir("iter-01/05_seed"))
    assert seed_manifest is not None and seed_manifest.balanced
    models = [it.model_id for it in second.iterations]
    assert len(models) == 2 and models[0] != models[1]
    train_two = read_manifest(ctx.stage_dir("iter-02/01_train"))
    assert train_two is not None and train_two.extra["model_id"] == models[1]
    assert second.iterations[1].overlap_with_previous is not None
    assert 0.0 <= second.iterations[1].overlap_with_previous <= 1.0
    if second.status == "stopped_by_overlap":
        assert "already collected" in second.message
