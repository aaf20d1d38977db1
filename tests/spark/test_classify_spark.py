"""Scoring and selection on Spark (local[2]) agree with the single-process path, whatever the partitioning."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.runs import commit_table_as_stage

from curate.classify.seed import documents_table, read_seed
from curate.classify.select import BELOW_THRESHOLD, OVER_BUDGET, SelectConfig, select_spark
from curate.classify.train import train_classifier
from curate.manifest import read_manifest
from curate.runners.spark import map_steps
from curate.schema import DROP_REASON
from curate.stage import Inputs, RunContext
from curate.stage_rows import read_stage_table
from curate.stages import registry
from curate.stages.classify import ScoreConfig, run_score, run_select
from curate.stages.registry import RANKING_DIR
from curate.step import run_steps
from curate.steps.mathscore import MathScoreStep

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def corpus(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small model (StackMathQA vs web text) and ~900 real documents to score with it."""
    work = tmp_path_factory.mktemp("classify-spark")
    stackmathqa = shared_data / "math-text/stackmathqa/data/stackmathqa100k"
    web = shared_data / "web-text"
    groundtruth = shared_data / "html/llm-webkit-bench/data/groundtruth"
    docs = list(read_seed([web / "dclm-annotated", web / "olmo-c4-sample", web / "dolma-cc_en_head"]))
    docs += read_seed(sorted(groundtruth.glob("*.jsonl")))  # math and non-math pages
    docs += read_seed(sorted(stackmathqa.glob("10*.jsonl")))  # some Q&A threads, excluded from negatives by URL
    documents = work / "documents.parquet"
    pq.write_table(documents_table(docs), documents, row_group_size=200)
    result = train_classifier(stackmathqa, documents, work / "model", dim=32, bucket=10_000, seed=3)
    return result.model_path, documents


def _score_local(model_path: Path, table: pa.Table) -> pa.Table:
    step = MathScoreStep(model_path)
    return pa.Table.from_batches(list(run_steps([step], table.to_batches(max_chunksize=300), table.schema)))


def test_spark_scores_equal_local_scores(spark, corpus: tuple[Path, Path]) -> None:
    model_path, documents = corpus
    table = pq.read_table(documents)
    step = MathScoreStep(model_path).ship(spark.sparkContext)  # executors read it through SparkFiles
    df = spark.read.parquet(str(documents)).repartition(3)
    scored = map_steps(df, [step], table.schema).toArrow()
    local = _score_local(model_path, table).sort_by("doc_id")
    scored = scored.sort_by("doc_id")
    assert scored.num_rows == table.num_rows
    assert scored["math_score"].type == pa.float32()
    assert scored["math_score"].to_pylist() == local["math_score"].to_pylist()
    assert set(scored["model_id"].to_pylist()) == {step.model_id}


def _sort_and_cut(table: pa.Table, budget: int) -> list[str]:
    rows = sorted(table.to_pylist(), key=lambda r: (-r["math_score"], r["doc_id"]))
    kept, total = [], 0
    for row in rows:
        total += row["n_tokens"]
        if total > budget:
            break
        kept.append(row["doc_id"])
    return sorted(kept)


def test_token_budget_matches_sort_and_cut_for_any_partitioning(
    spark, corpus: tuple[Path, Path], tmp_path: Path
) -> None:
    model_path, documents = corpus
    from curate.classify.tokens import APPROX, count_tokens

    scored = _score_local(model_path, pq.read_table(documents))
    scored = scored.append_column("n_tokens", pa.array(count_tokens(scored["text"].to_pylist(), APPROX)))
    pq.write_table(scored, tmp_path / "scored.parquet", row_group_size=150)
    total = sum(scored["n_tokens"].to_pylist())
    budget = total // 4
    sweep = (total // 10, total // 5, total // 2, total)
    expected = _sort_and_cut(scored, budget)
    assert 0 < len(expected) < scored.num_rows
    results = []
    for input_partitions, range_partitions in ((1, 1), (5, 7)):
        df = spark.read.parquet(str(tmp_path / "scored.parquet")).repartition(input_partitions)
        selection = select_spark(df, SelectConfig(token_budget=budget, sweep=sweep, partitions=range_partitions))
        flagged = selection.flagged.select("doc_id", DROP_REASON).toArrow()
        kept = sorted(r["doc_id"] for r in flagged.to_pylist() if r[DROP_REASON] is None)
        assert kept == expected, (input_partitions, range_partitions)
        assert set(flagged[DROP_REASON].drop_null().to_pylist()) == {OVER_BUDGET}
        assert [p["documents"] for p in selection.sweep] == [len(_sort_and_cut(scored, b)) for b in sweep]
        results.append((kept, selection.boundary, selection.sweep))
    assert all(r == results[0] for r in results)


def test_score_and_select_stages_commit_and_skip_when_done(spark, corpus: tuple[Path, Path], tmp_path: Path) -> None:
    model_path, documents = corpus
    run = str(tmp_path / "run")
    table = pq.read_table(documents)
    corpus_dir = commit_table_as_stage(RunContext(run, runner="local"), registry.NEAR_DEDUP.name(), table)

    ctx = RunContext(run).use_session(spark)
    score = run_score(ctx, Inputs(registry.SCORE.name(), stages=(corpus_dir,)), ScoreConfig(str(model_path)))
    assert score.rows_in == score.rows_out == table.num_rows and score.drops == {}
    config = SelectConfig(min_score=0.3, token_budget=100_000, sweep=(50_000, 100_000, 200_000))
    select_inputs = Inputs(registry.SELECT.name(), stages=(ctx.stage_dir(score.stage),))
    select = run_select(ctx, select_inputs, config)
    assert select.balanced and set(select.drops) <= {BELOW_THRESHOLD, OVER_BUDGET}
    assert select.extra["boundary"]["cum_tokens"] <= 100_000
    kept = read_stage_table(ctx.stage_dir(select.stage))
    assert kept.num_rows == select.rows_out and min(kept["math_score"].to_pylist()) >= 0.3
    assert sum(kept["n_tokens"].to_pylist()) == select.extra["boundary"]["cum_tokens"]
    assert Path(ctx.stage_dir(select.stage), RANKING_DIR).is_dir()
    again = run_select(ctx, select_inputs, config)
    assert again.created == select.created  # finished stage skipped
    assert read_manifest(ctx.stage_dir(registry.SCORE.name())) is not None
