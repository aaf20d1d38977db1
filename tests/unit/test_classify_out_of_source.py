"""The classifier on the documented out-of-source split: trained on math text against web text, tested on real
math web pages against real non-math pages from sources it never saw (tests/support/classifier_split.py).

`benchmarks/classify.py --auc-only` prints the same figure with the product's dim 256 beside the plain fastText
baseline; here dim 64 and a small bucket keep it to seconds.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from support.classifier_split import out_of_source_split

from curate.classify.evaluate import evaluate_model
from curate.classify.seed import documents_table
from curate.classify.train import train_classifier

# Measured 0.987 with these settings (0.987 at dim 256; 0.960 before settings and threshold were chosen on a
# held-out source, 0.954 with the paper's settings as given, 0.648 for plain fastText). One math page of 29
# ranked below 15 more non-math pages costs about 0.0007, so the floor leaves room for ~20 such swaps.
OUT_OF_SOURCE_AUC_FLOOR = 0.97


@pytest.fixture(scope="module")
def report(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("classify-oos")
    positives, negatives, test_math, test_other = out_of_source_split(shared_data)
    documents = work / "documents.parquet"
    pq.write_table(documents_table(negatives), documents)
    result = train_classifier(positives, documents, work / "model", dim=64, bucket=50_000, seed=0)
    return {"train": result, **evaluate_model(result.model_path, test_math, test_other)}


def test_math_pages_from_unseen_sources_rank_above_other_pages(report: dict) -> None:
    assert report["n_positive"] == 29 and report["n"] - report["n_positive"] >= 700
    assert report["files_also_in_training"] == []
    assert report["roc_auc"] >= OUT_OF_SOURCE_AUC_FLOOR, report["roc_auc"]


def test_threshold_read_on_a_held_out_source_selects_most_math_and_little_else(report: dict) -> None:
    train = report["train"]
    assert train.fit["selected_on"] == "held_out_sources" and train.threshold["split"] == "held_out_sources"
    # The threshold is the model's own, chosen before any test page was seen. On the test pages it keeps most of
    # the math and a small share of the rest: measured precision 0.92, recall 0.79 (target precision 0.95).
    assert report["threshold_source"] == "model manifest"
    assert report["recall"] >= 0.6 and report["precision"] >= 0.75, (report["precision"], report["recall"])
