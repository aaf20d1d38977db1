"""Selecting documents by classifier score: a threshold, a global token budget, or both (threshold first).

Ranking (the documented tie rule): `math_score` descending, then `doc_id` ascending; rows with a null
score are not ranked (dropped as `below_threshold`). A token budget N keeps the longest prefix of that
ranking whose cumulative `n_tokens` is <= N. The boundary document, the first one that would push the
sum past N, is *not* included, and neither is anything after it, even a shorter document that would still
fit: the selection is always a prefix of the ranking, so a bigger budget only ever adds documents.

On Spark nothing is collected but a handful of numbers: the narrow ranking (doc_id, score, tokens) is
range-partitioned on the ranking key, a window sums tokens within each range partition, the per-partition
totals give each partition its offset, and the selection becomes one boundary key, (score, doc_id) of the
last included document, which filters the full documents without a join.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.classify.tokens import DEEPSEEK_BPE, TOKENIZERS
from curate.errors import ConfigError
from curate.schema import CUM_TOKENS, DROP_DETAIL, DROP_REASON, N_TOKENS, RANKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

SELECT_STEP = "math_select_v1"
BELOW_THRESHOLD = "below_threshold"
OVER_BUDGET = "over_budget"

_UNITS = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12}


def parse_token_count(value: str | int) -> int:
    """`120B` -> 120_000_000_000; plain integers pass through. Units are decimal (K, M, B/G, T)."""
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMBGT]?)\s*", value.upper().replace("_", ""))
    if not match:
        raise ConfigError(f"token count {value!r}: expected an integer with an optional K/M/B/T suffix")
    return round(float(match.group(1)) * _UNITS[match.group(2)])


@dataclass(frozen=True)
class SelectConfig:
    """The select stage's rule: the `select:` section of a recipe and the options of `curate classify select`.

    Neither `min_score` nor `token_budget` (a recipe's default) means the threshold the iteration's model chose
    on validation for `train.target_precision` (`at_model_threshold`): fastText scores are not calibrated, so a
    fixed 0.5 means nothing.
    """

    min_score: float | None = None
    token_budget: int | None = None
    tokenizer: str = DEEPSEEK_BPE  # used only when the input has no n_tokens column yet
    sweep: tuple[int, ...] = ()  # extra budgets to report (cut-off score, documents) without selecting
    partitions: int | None = None  # range partitions of the ranking; default: Spark's shuffle partitions

    def __post_init__(self) -> None:
        if isinstance(self.sweep, list):  # YAML gives a list
            object.__setattr__(self, "sweep", tuple(self.sweep))
        if self.token_budget is not None and self.token_budget < 0:
            raise ConfigError(f"select: --token-budget must be >= 0, got {self.token_budget}")
        if self.tokenizer not in TOKENIZERS:
            raise ConfigError(f"select: unknown tokenizer {self.tokenizer!r}; choose one of {', '.join(TOKENIZERS)}")
        if any(b < 0 for b in self.sweep):
            raise ConfigError(f"select: sweep budgets must be >= 0, got {list(self.sweep)}")

    def at_model_threshold(self, threshold: float | None) -> SelectConfig:
        """This rule, or, when it has neither min_score nor budget, a min_score at the model's own threshold."""
        if self.min_score is not None or self.token_budget is not None:
            return self
        if threshold is None:
            raise ConfigError(
                "select: the model records no threshold; set select.min_score or select.token_budget "
                "(or retrain: models since trainer v2 record one)"
            )
        return replace(self, min_score=threshold)

    def require_rule(self) -> None:
        if self.min_score is None and self.token_budget is None:
            raise ConfigError("select: give --min-score, --token-budget, or both")

    def to_dict(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["sweep"] = list(self.sweep)
        payload.pop("partitions")  # changes the plan, never the result
        return payload


@dataclass(frozen=True)
class Boundary:
    """The last document inside the budget; everything ranked after it is over budget."""

    math_score: float
    doc_id: str
    cum_tokens: int
    documents: int


# --- Spark -----------------------------------------------------------------------------------------------


def _rank_order() -> list[Any]:
    from pyspark.sql import functions as F

    return [F.col("math_score").desc(), F.col("doc_id").asc()]


def spark_ranking(df: DataFrame, partitions: int | None = None) -> DataFrame:
    """RANKING rows (doc_id, math_score, n_tokens, cum_tokens) of the scored documents, by the tie rule."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    partitions = partitions or int(df.sparkSession.conf.get("spark.sql.shuffle.partitions") or "8")
    tokens = F.coalesce(F.col("n_tokens").cast("long"), F.lit(0)).alias("n_tokens")
    narrow = df.select("doc_id", "math_score", tokens).filter(F.col("math_score").isNotNull())
    # Range partitioning puts every key of partition i before every key of partition i+1, so a global
    # running sum is a running sum inside each partition plus the tokens of all earlier partitions.
    ranged = narrow.repartitionByRange(partitions, *_rank_order()).withColumn("_part", F.spark_partition_id())
    within = Window.partitionBy("_part").orderBy(*_rank_order()).rowsBetween(Window.unboundedPreceding, 0)
    summed = ranged.withColumn("_running", F.sum("n_tokens").over(within))
    totals = summed.groupBy("_part").agg(F.sum("n_tokens").alias("_part_tokens"))
    earlier = Window.orderBy("_part").rowsBetween(Window.unboundedPreceding, -1)
    offsets = totals.select("_part", F.coalesce(F.sum("_part_tokens").over(earlier), F.lit(0)).alias("_offset"))
    return (
        summed.join(F.broadcast(offsets), "_part")
        .select(
            "doc_id",
            "math_score",
            "n_tokens",
            (F.col("_offset") + F.col("_running")).cast("long").alias("cum_tokens"),
        )
        .sortWithinPartitions(*_rank_order())
    )


def spark_boundary(ranking: DataFrame, budget: int) -> Boundary | None:
    """The last ranked document with cumulative tokens <= budget (None: not even the first fits)."""
    from pyspark.sql import functions as F

    inside = ranking.filter(F.col("cum_tokens") <= budget)
    last = inside.orderBy(F.col("math_score").asc(), F.col("doc_id").desc()).limit(1).collect()
    if not last:
        return None
    count = inside.count()
    return Boundary(float(last[0]["math_score"]), last[0]["doc_id"], int(last[0]["cum_tokens"]), count)


def spark_sweep(ranking: DataFrame, budgets: list[int]) -> list[dict[str, Any]]:
    """Per budget: documents and tokens selected, and the score cut-off (score of the last document in)."""
    from pyspark.sql import functions as F

    if not budgets:
        return []
    aggregates = []
    for i, budget in enumerate(budgets):
        inside = F.col("cum_tokens") <= budget
        aggregates += [
            F.sum(F.when(inside, 1).otherwise(0)).alias(f"d{i}"),
            F.max(F.when(inside, F.col("cum_tokens"))).alias(f"t{i}"),
            F.min(F.when(inside, F.col("math_score"))).alias(f"s{i}"),
        ]
    row = ranking.agg(*aggregates).first()
    assert row is not None
    return [
        _sweep_point(budget, row[f"d{i}"] or 0, row[f"t{i}"] or 0, row[f"s{i}"]) for i, budget in enumerate(budgets)
    ]


def _sweep_point(budget: int, documents: int, tokens: int, cutoff: float | None) -> dict[str, Any]:
    return {
        "budget": int(budget),
        "documents": int(documents),
        "tokens": int(tokens),
        "score_cutoff": None if cutoff is None else float(cutoff),
    }


def spark_flag(df: DataFrame, config: SelectConfig, boundary: Boundary | None) -> DataFrame:
    """`df` with drop_reason / drop_detail set on every unselected row (the stage writer splits them)."""
    from pyspark.sql import functions as F

    score = F.col("math_score")
    below: Any = score.isNull()
    if config.min_score is not None:
        below = below | (score < F.lit(float(config.min_score)))
    detail_below = F.when(score.isNull(), F.lit("no math_score")).otherwise(
        F.concat(F.lit("math_score "), F.format_number(score.cast("double"), 6), F.lit(f" < {config.min_score}"))
    )
    reason: Any = F.when(below, F.lit(BELOW_THRESHOLD))
    detail: Any = F.when(below, detail_below)
    if config.token_budget is not None:
        if boundary is None:
            over: Any = F.lit(True)
        else:
            # Ranked after the boundary key (score desc, doc_id asc) <=> over budget.
            over = (score < F.lit(boundary.math_score)) | (
                (score == F.lit(boundary.math_score)) & (F.col("doc_id") > F.lit(boundary.doc_id))
            )
        reason = reason.when(over, F.lit(OVER_BUDGET))
        detail = detail.when(over, F.lit(f"ranked after the budget boundary ({config.token_budget} tokens)"))
    return df.withColumn(DROP_REASON, reason.cast("string")).withColumn(DROP_DETAIL, detail.cast("string"))


# --- pyarrow (local runner) ------------------------------------------------------------------------------


def local_ranking(table: pa.Table) -> pa.Table:
    scored = table.select(["doc_id", "math_score", "n_tokens"]).filter(pc.is_valid(table["math_score"]))
    ordered = scored.sort_by([("math_score", "descending"), ("doc_id", "ascending")])
    tokens = pc.fill_null(ordered["n_tokens"].cast(pa.int64()), 0)  # as Spark's sum, which skips nulls
    cumulative = np.cumsum(tokens.to_numpy())
    ordered = ordered.set_column(2, N_TOKENS, tokens)
    return ordered.append_column(CUM_TOKENS, pa.array(cumulative, pa.int64())).cast(RANKING)


def local_boundary(ranking: pa.Table, budget: int) -> Boundary | None:
    cumulative = ranking["cum_tokens"].to_numpy()
    # cum_tokens never decreases along the ranking, so the documents inside form a prefix.
    count = int(np.searchsorted(cumulative, budget, side="right"))
    if count == 0:
        return None
    last = count - 1
    return Boundary(
        float(ranking["math_score"][last].as_py()), ranking["doc_id"][last].as_py(), int(cumulative[last]), count
    )


def local_sweep(ranking: pa.Table, budgets: list[int]) -> list[dict[str, Any]]:
    points = []
    for budget in budgets:
        boundary = local_boundary(ranking, budget)
        if boundary is None:
            points.append(_sweep_point(budget, 0, 0, None))
        else:
            points.append(_sweep_point(budget, boundary.documents, boundary.cum_tokens, boundary.math_score))
    return points


def local_flag(table: pa.Table, config: SelectConfig, boundary: Boundary | None) -> pa.Table:
    scores = table["math_score"].to_numpy(zero_copy_only=False)
    scores = np.asarray(scores, dtype=np.float64)  # nulls arrive as NaN
    missing = np.isnan(scores)
    below = missing.copy()
    if config.min_score is not None:
        below |= ~missing & (scores < config.min_score)
    over = np.zeros(len(scores), dtype=bool)
    if config.token_budget is not None:
        if boundary is None:
            over[:] = True
        else:
            ids = np.array(table["doc_id"].to_pylist(), dtype=object)
            over = (scores < boundary.math_score) | ((scores == boundary.math_score) & (ids > boundary.doc_id))
    reasons: list[str | None] = []
    details: list[str | None] = []
    for i in range(len(scores)):
        if below[i]:
            reasons.append(BELOW_THRESHOLD)
            details.append("no math_score" if missing[i] else f"math_score {scores[i]:.6f} < {config.min_score}")
        elif over[i]:
            reasons.append(OVER_BUDGET)
            details.append(f"ranked after the budget boundary ({config.token_budget} tokens)")
        else:
            reasons.append(None)
            details.append(None)
    table = table.append_column(pa.field(DROP_REASON, pa.string()), pa.array(reasons, pa.string()))
    return table.append_column(pa.field(DROP_DETAIL, pa.string()), pa.array(details, pa.string()))


def threshold_survivors_local(table: pa.Table, min_score: float | None) -> pa.Table:
    if min_score is None:
        return table
    # Compared in float64 on both runners: Spark widens the float32 column to meet a double literal.
    scores = pc.cast(table["math_score"], pa.float64())
    return table.filter(pc.fill_null(pc.greater_equal(scores, pa.scalar(float(min_score))), False))


# --- both runners ----------------------------------------------------------------------------------------


@dataclass
class Selection:
    """Flagged documents (drop columns set), the ranking, the budget boundary and the sweep."""

    flagged: Any  # DataFrame on Spark, pa.Table locally
    ranking: Any
    boundary: Boundary | None
    sweep: list[dict[str, Any]]

    def summary(self, config: SelectConfig) -> dict[str, Any]:
        return {
            "rule": "math_score desc, doc_id asc; keep while cumulative n_tokens <= budget; boundary doc excluded",
            "boundary": asdict(self.boundary) if self.boundary else None,
            "token_budget": config.token_budget,
            "min_score": config.min_score,
            "sweep": self.sweep,
        }


def select_spark(df: DataFrame, config: SelectConfig, ranking_path: str | None = None) -> Selection:
    """Flag unselected rows of a scored DataFrame (needs doc_id, math_score; n_tokens is added if absent).

    `ranking_path`: where to write the ranking (read back, so boundary, sweep and flags all see one
    materialised ranking); without it the ranking is persisted in Spark's cache.
    """
    from pyspark import StorageLevel

    config.require_rule()
    from pyspark.sql import functions as F

    if "math_score" not in df.columns:
        raise ConfigError("select: the input has no math_score column; run the score stage first")
    if N_TOKENS.name not in df.columns:
        # Counted once and kept: both the ranking and the flagged output read the counts.
        df = count_tokens_spark(df, config.tokenizer).persist(StorageLevel.MEMORY_AND_DISK)
    boundary = None
    sweep: list[dict[str, Any]] = []
    ranking = None
    if config.token_budget is not None or config.sweep:
        candidates = df
        if config.min_score is not None:
            candidates = df.filter(F.col("math_score").cast("double") >= F.lit(float(config.min_score)))
        ranking = spark_ranking(candidates, config.partitions)
        if ranking_path is not None:
            from curate.io import fs

            ranking.write.mode("overwrite").parquet(fs.to_uri(ranking_path))
            ranking = df.sparkSession.read.parquet(fs.to_uri(ranking_path))
        else:
            ranking = ranking.persist(StorageLevel.MEMORY_AND_DISK)
        if config.token_budget is not None:
            boundary = spark_boundary(ranking, config.token_budget)
        sweep = spark_sweep(ranking, list(config.sweep))
    return Selection(spark_flag(df, config, boundary), ranking, boundary, sweep)


def select_local(table: pa.Table, config: SelectConfig) -> Selection:
    """The pyarrow twin of `select_spark` for the local runner (whole table in memory: small inputs)."""
    from curate.classify.tokens import count_tokens

    config.require_rule()
    if "math_score" not in table.column_names:
        raise ConfigError("select: the input has no math_score column; run the score stage first")
    if N_TOKENS.name not in table.column_names:
        counts = count_tokens(table["text"].to_pylist(), config.tokenizer)
        table = table.append_column(N_TOKENS, pa.array(counts, pa.int64()))
    boundary = None
    sweep: list[dict[str, Any]] = []
    ranking = None
    if config.token_budget is not None or config.sweep:
        ranking = local_ranking(threshold_survivors_local(table, config.min_score))
        if config.token_budget is not None:
            boundary = local_boundary(ranking, config.token_budget)
        sweep = local_sweep(ranking, list(config.sweep))
    return Selection(local_flag(table, config, boundary), ranking, boundary, sweep)


def count_tokens_spark(df: DataFrame, tokenizer: str) -> DataFrame:
    from curate.classify.tokens import TokenCountStep
    from curate.runners.spark import map_steps

    return map_steps(df, [TokenCountStep(tokenizer)]).drop(DROP_REASON, DROP_DETAIL)
