"""Content fingerprints: a same-size in-place edit of a WARC, a seed file or a benchmark re-runs what it feeds.

Every edit below keeps the file's size, and restores its mtime, so only a fingerprint of the content can
see it. The stages are the real ones (local runner, real fastText, real Parquet); no JVM is needed.
"""

from __future__ import annotations

import gzip
import importlib
import json
import os
import re
import sys
from pathlib import Path

import pyarrow as pa
import pytest
from support.decontam import planted_documents
from support.runs import commit_table_as_stage

from curate.fingerprints import code_versions, files_fingerprint, path_digest
from curate.manifest import MANIFEST_NAME, read_manifest
from curate.stage import Inputs, RunContext, Stage
from curate.stage_rows import read_stage_table
from curate.stages import registry
from curate.stages.decontam import DecontamConfig, run_decontaminate
from curate.stages.ingest import run_ingest
from curate.stages.train import TrainConfig, run_train


def _edit_in_place(path: Path, old: bytes, new: bytes) -> None:
    """Replace the first `old` by `new` (same length) and put the mtime back: size and mtime are unchanged."""
    assert len(old) == len(new)
    stat = path.stat()
    data = path.read_bytes()
    assert old in data, old
    path.write_bytes(data.replace(old, new, 1))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns


def test_files_and_directories_are_fingerprinted_by_content(tmp_path: Path) -> None:
    seed = tmp_path / "seed"
    (seed / "deep").mkdir(parents=True)
    (seed / "a.jsonl").write_text('{"text": "integral of x"}\n')
    (seed / "deep" / "b.jsonl").write_text('{"text": "derivative of y"}\n')
    fingerprints = [files_fingerprint([str(seed)])]

    _edit_in_place(seed / "deep" / "b.jsonl", b"y", b"z")  # a nested same-size edit
    fingerprints.append(files_fingerprint([str(seed)]))
    (seed / "deep" / "c.jsonl").write_text("{}\n")  # an added file
    fingerprints.append(files_fingerprint([str(seed)]))
    (seed / "deep" / "c.jsonl").rename(seed / "deep" / "d.jsonl")  # a renamed file
    fingerprints.append(files_fingerprint([str(seed)]))
    assert len(set(fingerprints)) == len(fingerprints)

    assert files_fingerprint([str(seed)]) == files_fingerprint([str(seed)])  # deterministic
    assert path_digest(str(tmp_path / "absent")) == "missing"
    assert path_digest(f"file://{seed / 'a.jsonl'}") == path_digest(str(seed / "a.jsonl"))


def test_a_same_size_edit_of_a_warc_reruns_ingest(shared_data: Path, tmp_path: Path) -> None:
    warc = tmp_path / "whirlwind.warc"  # uncompressed, so a byte can be edited in place
    warc.write_bytes(gzip.decompress((shared_data / "cc-warc/whirlwind/whirlwind.warc.gz").read_bytes()))
    ctx = RunContext(str(tmp_path / "run"), runner="local")
    first = run_ingest(ctx, [str(warc)])
    again = run_ingest(ctx, [str(warc)])
    assert [m.created for m in again] == [m.created for m in first]  # unchanged input: skipped
    assert [m.fingerprint for m in again] == [m.fingerprint for m in first]
    assert "Escopete" in read_stage_table(ctx.stage_dir(registry.EXTRACT.name()), ["text"]).column("text")[0].as_py()

    _edit_in_place(warc, b"Escopete</", b"Escopetx</")
    edited = run_ingest(ctx, [str(warc)])
    assert edited[0].fingerprint != first[0].fingerprint
    assert edited[1].fingerprint != first[1].fingerprint  # the stage it feeds follows
    assert "Escopetx" in read_stage_table(ctx.stage_dir(registry.EXTRACT.name()), ["text"]).column("text")[0].as_py()


def test_a_same_size_edit_of_a_seed_file_reruns_training(shared_data: Path, tmp_path: Path) -> None:
    seed = tmp_path / "seed"
    seed.mkdir()
    for name in ("32.jsonl", "33.jsonl", "45.jsonl", "101.jsonl"):
        (seed / name).write_bytes((shared_data / "math-text/stackmathqa/data/stackmathqa100k" / name).read_bytes())
    ctx = RunContext(str(tmp_path / "run"), runner="local")
    negatives, _ = planted_documents(shared_data, clean=120)
    corpus = commit_table_as_stage(ctx, "03_near_dedup", negatives)
    config = TrainConfig(seed=[str(seed)], dim=16, bucket=10_000, min_count=1, epoch=1, valid_fraction=0.2)

    first = run_train(ctx, Inputs(registry.TRAIN.name(1), stages=(corpus,)), config)
    assert run_train(ctx, Inputs(registry.TRAIN.name(1), stages=(corpus,)), config).created == first.created
    assert first.code  # the training code's version is part of the fingerprint

    _edit_in_place(seed / "101.jsonl", b"Calculating", b"Kalculating")
    edited = run_train(ctx, Inputs(registry.TRAIN.name(1), stages=(corpus,)), config)
    assert edited.fingerprint != first.fingerprint
    (seed / "104.jsonl").write_bytes(
        (shared_data / "math-text/stackmathqa/data/stackmathqa100k/104.jsonl").read_bytes()
    )
    added = run_train(ctx, Inputs(registry.TRAIN.name(1), stages=(corpus,)), config)
    assert added.fingerprint not in (first.fingerprint, edited.fingerprint)
    assert added.extra["counts"]["train_positive"] + added.extra["counts"].get("valid_positive", 0) > 0


def test_a_same_size_edit_of_a_benchmark_reruns_decontamination(shared_data: Path, tmp_path: Path) -> None:
    data_root = tmp_path / "data"
    bench = data_root / "benchmarks/math500/test.jsonl"
    bench.parent.mkdir(parents=True)
    lines = (shared_data / "benchmarks/math500/test.jsonl").read_text().splitlines()[:20]
    bench.write_text("\n".join(lines) + "\n")
    benchmarks = tmp_path / "registry.yaml"
    benchmarks.write_text(
        "benchmarks:\n  - name: math500\n    path: benchmarks/math500/test.jsonl\n    id_field: unique_id\n"
        "    question_fields: [problem]\n    answer_fields: [solution]\n"
    )
    item = json.loads(lines[3])
    pages, _ = planted_documents(shared_data, clean=6)
    leaked = pages.slice(0, 1).to_pylist()[0]
    leaked.update(doc_id="leaked-page", text=f"Homework help.\n\n{item['problem']}\n\nThanks!")
    documents = pa.concat_tables([pages, pa.Table.from_pylist([leaked], schema=pages.schema)])
    ctx = RunContext(str(tmp_path / "run"), runner="local")
    source = commit_table_as_stage(ctx, "03_near_dedup", documents)

    def decontaminate():  # type: ignore[no-untyped-def]
        config = DecontamConfig(benchmarks=str(benchmarks), data_root=str(data_root))
        return run_decontaminate(ctx, Inputs(registry.DECONTAMINATE.name(), stages=(source,)), config)

    first = decontaminate()
    assert first.drops == {"benchmark_contamination": 1}  # the planted page
    assert decontaminate().created == first.created

    # Rewrite the leaked item's words in the benchmark file (same length): the page no longer matches it.
    escaped = json.dumps(item["problem"])[1:-1]
    blanked = re.sub(r"(?<!\\)\b[A-Za-z]{3,}\b", lambda word: "x" * len(word.group()), escaped)
    _edit_in_place(bench, escaped.encode(), blanked.encode())
    edited = decontaminate()
    assert edited.fingerprint != first.fingerprint
    assert edited.rows_out == first.rows_out + 1 and edited.drops == {}


def test_editing_a_steps_module_changes_its_stages_fingerprint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = tmp_path / "curate_probe_step.py"
    module.write_text('from curate.step import Step\n\nclass ProbeStep(Step):\n    name = "probe_v1"\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    probe = importlib.import_module("curate_probe_step")
    ctx = RunContext(str(tmp_path / "run"), runner="local")
    with Stage(ctx, Inputs("01_probe"), config={}, steps=["probe_v1"]) as before:
        assert set(before.code_versions) == {"probe_v1"} and before.pending
        Path(before.tmp_path).mkdir()
        before.finish(rows_in=0, rows_out=0, drops={})
    assert json.loads((tmp_path / "run/01_probe" / MANIFEST_NAME).read_text())["code"] == before.code_versions
    with Stage(ctx, Inputs("01_probe"), config={}, steps=["probe_v1"]) as unchanged:
        assert not unchanged.pending

    module.write_text(module.read_text() + "\n    # a change in behaviour, without a version bump\n")
    importlib.reload(probe)
    after = Stage(ctx, Inputs("01_probe"), config={}, steps=["probe_v1"])
    assert after.fingerprint != before.fingerprint  # so the stage runs again
    assert code_versions(["not_a_step_v1"]) == {}
    sys.modules.pop("curate_probe_step", None)
    assert read_manifest(str(tmp_path / "run/01_probe")) is not None
