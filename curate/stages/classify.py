"""The classifier's two stages: score every document, then select by threshold and/or token budget.

    score   MathScoreStep (+ TokenCountStep): adds math_score, model_id, n_tokens; drops nothing
    select  below_threshold / over_budget drops; `_ranking/` holds the ranking the budget cut

(their names in the run: curate.stages.registry.SCORE and SELECT)

Scores and token counts are written once; selection reruns cheaply for every threshold or budget. The
select stage's manifest carries the budget boundary and the budget sweep (score cut-off and documents
per budget), so choosing the next budget needs no extra job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from curate.classify.select import SELECT_STEP, SelectConfig, select_local, select_spark
from curate.classify.tokens import DEEPSEEK_BPE, TokenCountStep
from curate.io import fs
from curate.schema import DOCUMENTS, RANKING
from curate.stages.registry import RANKING_DIR
from curate.step import Step
from curate.steps.mathscore import MathScoreStep

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from curate.manifest import Manifest
    from curate.stage import Inputs, RunContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreConfig:
    """The model to score with (`model-<hash>.bin/.ftz`, its .json beside it); `tokenizer=None` counts no tokens."""

    model: str
    tokenizer: str | None = DEEPSEEK_BPE


def _input_schema(ctx: RunContext, source: str) -> pa.Schema:
    """The source stage's Arrow schema, read from its Parquet footers (never inferred from rows)."""
    from curate.stage_rows import stage_dataset

    if fs.is_local(source):
        return stage_dataset(source).schema
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(ctx.spark.read.parquet(fs.to_uri(source)).schema, timezone="UTC")


def run_score(ctx: RunContext, inputs: Inputs, config: ScoreConfig) -> Manifest:
    """Score the documents of `inputs.stages[0]` with a trained model; also count tokens unless tokenizer=None.

    Under a cluster master the model goes to executors with `addFile`; in local mode (and with the local
    runner) every worker reads the same path, which saves copying a 2 GB file.
    """
    from curate.stage_rows import run_step_stage

    (source,) = inputs.stages
    score = MathScoreStep(config.model)
    steps: list[Step] = [score]
    if config.tokenizer is not None:
        steps.append(TokenCountStep(config.tokenizer))
    if ctx.runner != "local":
        spark_context = ctx.spark.sparkContext
        if not (spark_context.master or "local").startswith("local"):
            score.ship(spark_context)
    schema = _input_schema(ctx, source) if fs.exists(source) else DOCUMENTS
    return run_step_stage(ctx, inputs, steps, input_schema=schema)


def run_select(ctx: RunContext, inputs: Inputs, config: SelectConfig) -> Manifest:
    """Select from the scored stage `inputs.stages[0]`; the rest go to `_rejected/` as below_threshold /
    over_budget, and `_ranking/` holds the ranking a token budget cut."""
    from curate.stage import Stage
    from curate.stage_rows import read_stage_table, write_local_output, write_spark_output

    (source,) = inputs.stages
    with Stage(ctx, inputs, config={"select": config.to_dict()}, steps=[SELECT_STEP]) as stage:
        if not stage.pending:
            return stage.result
        # Beside the staging directory, not in it: Spark's overwrite of the kept rows would delete it.
        ranking_path = stage.tmp_path + RANKING_DIR
        fs.remove_tree(ranking_path)
        if ctx.runner == "local":
            table = read_stage_table(source)
            rows_in = table.num_rows
            selection = select_local(table, config)
            flagged: pa.Table = selection.flagged
            counts = write_local_output(stage, flagged.to_batches(max_chunksize=1000), flagged.schema)
            if selection.ranking is not None:
                import pyarrow.parquet as pq

                fs.make_dirs(ranking_path)
                pq.write_table(selection.ranking.cast(RANKING), fs.join(ranking_path, "part-00000.parquet"))
        else:
            df = ctx.spark.read.parquet(fs.to_uri(source))
            rows_in = df.count()
            selection = select_spark(df, config, ranking_path=ranking_path)
            counts = write_spark_output(stage, selection.flagged)
        if fs.exists(ranking_path):
            fs.rename(ranking_path, fs.join(stage.tmp_path, RANKING_DIR))
        stage.finish(rows_in=rows_in, rows_out=counts.rows_out, drops=counts.drops, extra=selection.summary(config))
    return stage.result


def with_collected_flag(spark: SparkSession, scored_stage: str, selected_stage: str) -> DataFrame:
    """Every scored page of an iteration with `collected`: whether the select stage kept it."""
    from pyspark.sql import functions as F

    scored = spark.read.parquet(fs.to_uri(scored_stage))
    selected = spark.read.parquet(fs.to_uri(selected_stage)).select("doc_id", F.lit(True).alias("collected"))
    flagged = scored.join(selected, "doc_id", "left")
    return flagged.withColumn("collected", F.coalesce(F.col("collected"), F.lit(False)))
