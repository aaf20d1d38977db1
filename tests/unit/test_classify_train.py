"""Training the math classifier on the real shared data (small bucket and dim: seconds, not minutes)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from curate.classify.model import MATH_LABEL, load_model, score_texts
from curate.classify.preprocess import preprocess
from curate.classify.seed import documents_table, read_seed
from curate.classify.train import TrainResult, train_classifier
from curate.errors import ConfigError
from curate.step import run_steps
from curate.steps.mathscore import MathScoreStep

AUC_FLOOR = 0.95
# Measured 0.92 for this split (a textbook against web text is a hard transfer); a model that never left 0.5
# scores about 0.5-0.8 here.
OUT_OF_SOURCE_FLOOR = 0.85


def _webkit_pages(shared_data: Path, math: bool) -> list[Path]:
    groundtruth = shared_data / "html/llm-webkit-bench/data/groundtruth"
    return sorted(p for p in groundtruth.glob("*.jsonl") if p.name.startswith("math_") == math)


@pytest.fixture(scope="module")
def trained(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainResult, Path]:
    """Positives: StackMathQA, OpenStax, math web pages. Negatives: an ingest-like DOCUMENTS file of DCLM,
    C4, RedPajama, news articles and the non-math web pages, plus the math pages crawled again."""
    work = tmp_path_factory.mktemp("classify-train")
    math_pages = _webkit_pages(shared_data, math=True)
    positives = [
        shared_data / "math-text/stackmathqa/data/stackmathqa100k",
        shared_data / "math-text/openstax-calculus/modules",
        *math_pages,
    ]
    web = shared_data / "web-text"
    negatives = list(read_seed([web / "dclm-annotated", web / "olmo-c4-sample", web / "dolma-cc_en_head"])) + list(
        read_seed(_webkit_pages(shared_data, math=False))
    )
    negatives += read_seed(
        shared_data / "html/article-extraction-benchmark/ground-truth.json", text_field="articleBody"
    )
    negatives += read_seed(math_pages)  # seed pages met again in the crawl must not become negatives
    documents = work / "documents.parquet"
    pq.write_table(documents_table(negatives), documents)
    # dim 64 and a 20k bucket keep this to seconds; the other parameters are the paper's defaults.
    result = train_classifier(
        positives, documents, work / "model", dim=64, bucket=20_000, seed=7, quantize=True, quantize_cutoff=500
    )
    return result, documents


def test_held_out_metrics_clear_the_floor(trained: tuple[TrainResult, Path]) -> None:
    result, _ = trained
    metrics = result.metrics
    assert metrics["roc_auc"] >= AUC_FLOOR, metrics
    assert metrics["f1"] >= 0.9, metrics
    assert metrics["n"] >= 100
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["metrics"]["roc_auc"] == metrics["roc_auc"]
    assert {"precision", "recall", "f1", "roc_auc", "pr_curve"} <= set(manifest["metrics"])
    params = manifest["fasttext"]
    assert params["minCount"] == 3  # paper
    # The given settings (the paper's) are the first candidate; every candidate is trained without OpenStax and
    # scored on it, and the one ranking it best is the model's. On ~1k examples per class the paper's 3 epochs
    # at lr 0.1 barely leave 0.5, so they lose to more epochs.
    fit = manifest["fit"]
    assert fit["selected_on"] == "held_out_sources" and fit["tuned"] and not fit["degenerate"]
    first = fit["candidates"][0]
    assert (first["word_ngrams"], first["epoch"], first["lr"]) == (3, 3, 0.1)
    # The best held-out ROC-AUC among candidates whose held-out scores spread (the paper's do not).
    spreading = [c for c in fit["candidates"] if c["spread"] >= 0.2]
    assert first not in spreading
    best = max(round(c["held_out_roc_auc"], 3) for c in spreading)
    chosen = next(c for c in spreading if round(c["held_out_roc_auc"], 3) == best)
    assert (
        fit["chosen"] == {k: chosen[k] for k in ("word_ngrams", "epoch", "lr")} != {k: first[k] for k in fit["chosen"]}
    )
    assert {"word_ngrams": params["wordNgrams"], "epoch": params["epoch"], "lr": params["lr"]} == fit["chosen"]


def test_threshold_and_out_of_source_auc_are_recorded(trained: tuple[TrainResult, Path]) -> None:
    result, _ = trained
    manifest = json.loads(result.manifest_path.read_text())
    threshold = manifest["threshold"]
    # Read on the held-out source's scores, where a model meets math it never saw, not on the in-source split.
    assert threshold["split"] == "held_out_sources" and threshold["reached"]
    assert threshold["precision"] >= threshold["target_precision"] == 0.95
    assert manifest["metrics"]["threshold"] == threshold["threshold"] != 0.5
    assert sum(manifest["metrics"]["histogram"]["counts"]) == manifest["metrics"]["n"]
    check = manifest["out_of_source"]
    # OpenStax (textbook sections) is held out; StackMathQA is most of the seed, so a model without it would be
    # trained on a sliver and is not a fold.
    assert [Path(s).name for s in check["held_out_sources"]] == ["modules"] and check["n_positive"] >= 50
    assert check["roc_auc"] >= OUT_OF_SOURCE_FLOOR, check


def test_classes_are_balanced_and_seed_urls_excluded(trained: tuple[TrainResult, Path]) -> None:
    counts = trained[0].counts
    assert counts["train_positive"] == counts["train_negative"]
    assert counts["valid_positive"] == counts["valid_negative"]
    assert counts["excluded_seed_urls"] >= 20  # the re-crawled math pages


def test_model_file_is_named_by_its_content_hash(trained: tuple[TrainResult, Path]) -> None:
    result = trained[0]
    sha = hashlib.sha256(result.model_path.read_bytes()).hexdigest()
    assert result.model_id == f"model-{sha[:16]}" and result.model_path.name == f"{result.model_id}.bin"
    assert json.loads(result.manifest_path.read_text())["sha256"] == sha
    assert result.quantized_path is not None and result.quantized_path.suffix == ".ftz"
    assert result.quantized_path.stat().st_size < result.model_path.stat().st_size
    assert result.quantized_metrics is not None and result.quantized_metrics["roc_auc"] >= AUC_FLOOR


def test_numpy2_predict_accepts_str_and_list(trained: tuple[TrainResult, Path]) -> None:
    model = load_model(trained[0].model_path)
    line = preprocess("Prove that $\\sqrt{2}$ is irrational: suppose $\\sqrt{2} = p/q$ in lowest terms.")
    labels, probs = model.predict(line, k=2)
    assert isinstance(probs, np.ndarray) and labels[0] == MATH_LABEL
    many_labels, many_probs = model.predict([line, preprocess("The match ended two nil after extra time.")])
    assert many_labels[0][0] == MATH_LABEL and len(many_probs) == 2
    scores = score_texts(model, [line, "", None])
    assert scores.dtype == np.float32 and np.all((scores >= 0) & (scores <= 1))


def test_score_step_adds_typed_columns_and_keeps_rows(trained: tuple[TrainResult, Path]) -> None:
    result, documents = trained
    table = pq.read_table(documents)
    step = MathScoreStep(result.model_path)
    out = list(run_steps([step], table.to_batches(max_chunksize=256), table.schema))
    scored = out[0].schema
    assert scored.field("math_score").type.bit_width == 32 and str(scored.field("model_id").type) == "string"
    assert sum(b.num_rows for b in out) == table.num_rows
    ids = {b.column("model_id")[0].as_py() for b in out}
    assert ids == {result.model_id}
    # Re-scoring replaces the columns instead of adding a second pair.
    rescored = next(iter(run_steps([step], out[:1], out[0].schema)))
    assert rescored.schema.names.count("math_score") == 1


def test_same_data_and_seed_give_the_same_model_id(
    shared_data: Path, trained: tuple[TrainResult, Path], tmp_path: Path
) -> None:
    # fasttext-numpy2-wheel leaves most of the input matrix uninitialised; train.py makes it zeros, so
    # a retrain is byte-identical (and never hits the NaN losses that garbage memory caused).
    # Two seed sources (StackMathQA's shards in two directories), so the held-out grid (fold models, selection,
    # threshold) is part of what must repeat.
    shards = sorted((shared_data / "math-text/stackmathqa/data/stackmathqa100k").glob("*.jsonl"))
    positives = [tmp_path / "few", tmp_path / "many"]
    for number, shard in enumerate(shards):
        target = positives[0] if number % 3 == 0 else positives[1]
        target.mkdir(exist_ok=True)
        (target / shard.name).write_bytes(shard.read_bytes())
    kwargs = {"dim": 16, "bucket": 5_000, "seed": 11, "max_per_class": 300}
    first = train_classifier(positives, trained[1], tmp_path / "a", **kwargs)
    second = train_classifier(positives, trained[1], tmp_path / "b", **kwargs)
    assert first.fit["selected_on"] == "held_out_sources"
    assert first.model_id == second.model_id and first.threshold == second.threshold


def test_eval_scores_pages_from_sources_not_trained_on(
    shared_data: Path, trained: tuple[TrainResult, Path], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from curate.classify.evaluate import evaluate_model
    from curate.cli.main import app

    result, _ = trained
    math_pages = [shared_data / "html/llm-webkit-ccmath"]
    other_pages = sorted((shared_data / "html/article-extraction-benchmark/html").glob("*.html.gz"))[:40]
    report = evaluate_model(result.model_path, math_pages, other_pages)
    assert report["n_positive"] >= 5 and report["n"] - report["n_positive"] == 40
    assert report["threshold"] == result.threshold["threshold"] and report["threshold_source"] == "model manifest"
    # The llm-webkit math pages were training positives here, ccmath and the articles were not.
    assert report["files_also_in_training"] == []
    assert report["roc_auc"] >= 0.9, report["roc_auc"]
    assert sum(report["histogram"]["counts"]) == report["n"]

    runner = CliRunner()
    args = ["classify", "eval", "--model", str(result.model_path), "-p", str(math_pages[0])]
    shown = runner.invoke(app, [*args, "-n", str(other_pages[0]), "--json", str(tmp_path / "eval.json")])
    assert shown.exit_code == 0, shown.output
    assert "ROC-AUC" in shown.output and json.loads((tmp_path / "eval.json").read_text())["n"] >= 6
    missing = runner.invoke(app, ["classify", "eval", "--model", str(tmp_path / "nope.bin"), "-p", "x", "-n", "y"])
    # In-process typer raises the ConfigError that `curate`'s entry point turns into one line and exit code 2.
    assert isinstance(missing.exception, ConfigError) and "does not exist" in str(missing.exception)
