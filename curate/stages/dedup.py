"""Near-duplicate removal on Spark: MinHash signatures, LSH banding, verified pairs, connected components.

The plan (each arrow is a shuffle, nothing is collected to the driver):

    documents --mapInArrow(MinHashStep)--> signatures (written once, read back: the expensive part)
    signatures --explode bands--> (band, band hash, doc_id) --group--> buckets --> candidate pairs
    candidate pairs --join signatures--> estimated Jaccard >= threshold --> edges
    edges --large-star / small-star rounds--> component = smallest doc_id of the component
    components --keep rule--> kept document; members whose signature agrees with it at the threshold are
        removed, the rest are clustered again (a chain A~B~C never removes C for A)
    --> DUPLICATES rows (doc_id, cluster_id, kept_doc_id, jaccard)
    documents --left join DUPLICATES--> drop_reason "near_duplicate" on every removed document

Determinism: buckets, pairs and components are sets and every choice is a minimum (smallest doc_id,
keep rule ending on doc_id), so the output does not depend on partitioning or task order.

Incremental (cross-dump) mode: the signatures of an earlier run's kept documents (its `_signatures/`)
join the banding. Pairs between two earlier documents are not considered, earlier documents are never
removed, and a new document in a component that holds earlier documents is removed in favour of the
smallest earlier doc_id. Earlier signatures are read, never recomputed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from curate.errors import ConfigError, CurateError
from curate.io import fs
from curate.manifest import read_manifest
from curate.schema import DROP_DETAIL, DROP_REASON, DUPLICATES, SIGNATURES, spark_schema
from curate.stages.registry import DUPLICATES_DIR, SIGNATURES_DIR
from curate.steps.minhash import MinHashParams, MinHashStep

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from curate.manifest import Manifest
    from curate.stage import Inputs, RunContext

log = logging.getLogger(__name__)

NEAR_DUPLICATE = "near_duplicate"
NEAR_DEDUP_STEP = "minhash_lsh_verified_stars_v2"
# Keep-rule columns that may be absent: math_score exists only once the classifier stage has run.
OPTIONAL_KEEP_COLUMNS = frozenset({"math_score"})
VERIFY_MODES = ("exact", "signature", "none")
# Up to this many documents near the threshold, their ids are broadcast to filter the texts without a shuffle:
# about 5 MB of ids through the driver, within Spark's own 10 MB auto-broadcast size; above it, a shuffle join.
BROADCAST_IDS = 100_000


@dataclass(frozen=True)
class DedupConfig:
    """Near-dedup settings.

    verify: how a candidate pair (and a member's likeness to its kept document) is measured against
        `minhash.threshold`. "exact": the Jaccard of the two shingle sets, computed from the texts (a pair
        with a document of an earlier corpus, whose text is not stored, falls back to the signature);
        "signature": the fraction of equal signature values (datasketch's `MinHash.jaccard`, about +-0.04
        at 0.7 with 128 permutations); "none": every LSH candidate is an edge (LSH also pairs documents far
        below the threshold). "exact" costs a join of the near-threshold pairs with their texts: on the
        6,720-document benchmark, 3 s more on a warm 19 s stage; it changed 2 % of the removals (recall
        0.974 vs 0.969) and raised the lowest Jaccard of any two merged documents from 0.53 to 0.56.
    exact_margin: "exact" computes the exact Jaccard only where the signature estimate lies within this of the
        threshold, where the estimate's error (sd about 0.04 at 0.7 with 128 permutations) could flip the
        decision; a pair further away keeps its estimate. 1.0 computes it for every pair.
    keep: the order that picks the document a cluster keeps: "column asc|desc" items, then doc_id
        ascending. `text_length` is the text's length in characters; a missing `math_score` is skipped.
    max_bucket_size: a bucket with more documents than this (boilerplate pages sharing a whole band) is
        linked as a star to its smallest doc_id instead of as all pairs, so one bucket cannot emit
        millions of pairs.
    max_rounds: the cap on large-star/small-star rounds of one connected-components run.
    max_passes: the cap on star passes (see `assign_stars`); members still unassigned after it are kept.
    min_jaccard_to_kept: the signature agreement with its cluster's kept document that a removed document
        needs (default: `minhash.threshold`). Lower finds more of each family, at the price of looser pairs.
    """

    minhash: MinHashParams = field(default_factory=MinHashParams)
    verify: str = "exact"
    keep: tuple[str, ...] = ("math_score desc", "text_length desc")
    max_bucket_size: int = 64
    max_rounds: int = 40
    max_passes: int = 4
    min_jaccard_to_kept: float | None = None
    exact_margin: float = 0.15

    def __post_init__(self) -> None:
        if self.verify not in VERIFY_MODES:
            raise ConfigError(f"dedup.verify must be one of {', '.join(VERIFY_MODES)}, got {self.verify!r}")
        for name, least in (("max_passes", 1), ("max_bucket_size", 2), ("max_rounds", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ConfigError(f"dedup.{name} must be an integer >= {least}, got {value!r}")
        if not isinstance(self.exact_margin, int | float) or not 0 <= self.exact_margin <= 1:
            raise ConfigError(f"dedup.exact_margin must be a number in [0, 1], got {self.exact_margin!r}")
        bound = self.min_jaccard_to_kept
        if bound is not None and (not isinstance(bound, int | float) or isinstance(bound, bool) or not 0 < bound <= 1):
            raise ConfigError(f"dedup.min_jaccard_to_kept must be a number in (0, 1], got {bound!r}")
        for item in self.keep:
            parts = item.split()
            if len(parts) not in (1, 2) or (len(parts) == 2 and parts[1] not in ("asc", "desc")):
                raise ConfigError(f"dedup.keep item {item!r}: expected 'column', 'column asc' or 'column desc'")

    @property
    def edge_threshold(self) -> float:
        """The Jaccard a candidate pair needs to be an edge of the graph."""
        return 0.0 if self.verify == "none" else self.minhash.threshold

    @property
    def kept_threshold(self) -> float:
        """The Jaccard a member needs with its cluster's kept document to be removed."""
        if self.verify == "none":
            return 0.0
        return self.minhash.threshold if self.min_jaccard_to_kept is None else self.min_jaccard_to_kept

    def to_dict(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["keep"] = list(self.keep)
        payload["minhash"]["bands"], payload["minhash"]["rows"] = self.minhash.bands_rows
        return payload


def dedup_config(values: dict[str, Any] | None, origin: str = "configuration") -> DedupConfig:
    """A DedupConfig from a `dedup:` section (YAML / `--set`), naming any unknown or mistyped field."""
    from curate.config import section

    values = dict(values or {})
    minhash = section({"minhash": values.pop("minhash", None) or {}}, "minhash", MinHashParams, f"{origin}: dedup")
    if isinstance(values.get("keep"), str):
        values["keep"] = [values["keep"]]
    if "keep" in values:
        values["keep"] = tuple(values["keep"])
    base = section({"dedup": values}, "dedup", DedupConfig, origin)
    return DedupConfig(
        minhash=minhash,
        verify=base.verify,
        keep=base.keep,
        max_bucket_size=base.max_bucket_size,
        max_rounds=base.max_rounds,
        max_passes=base.max_passes,
        min_jaccard_to_kept=base.min_jaccard_to_kept,
        exact_margin=base.exact_margin,
    )


@dataclass
class DedupResult:
    """`documents` is the input with drop columns; `duplicates` has the DUPLICATES schema."""

    documents: DataFrame
    duplicates: DataFrame
    signatures: DataFrame
    stats: dict[str, int]


@contextmanager
def _timed(timings: dict[str, float] | None, name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        if timings is not None:
            timings[name] = round(timings.get(name, 0.0) + time.perf_counter() - start, 3)


# --- signatures and banding ----------------------------------------------------------------------------


class _SignaturesFunction:
    """The picklable body of `mapInArrow` that turns (doc_id, text) batches into SIGNATURES batches."""

    def __init__(self, params: MinHashParams) -> None:
        self.step = MinHashStep(params, signatures_only=True)

    def __call__(self, batches: Any) -> Any:
        from curate.step import conform

        for batch in self.step.apply(batches):
            yield conform(batch, SIGNATURES)


def compute_signatures(documents: DataFrame, params: MinHashParams) -> DataFrame:
    """SIGNATURES rows (doc_id, minhash, n_shingles) for every document."""
    texts = documents.select("doc_id", "text")
    cores = documents.sparkSession.sparkContext.defaultParallelism
    if texts.rdd.getNumPartitions() < cores:
        # A small input is one Parquet split, i.e. one task on one core; MinHash is the CPU-heavy part.
        texts = texts.repartition(cores)
    return texts.mapInArrow(_SignaturesFunction(params), spark_schema(SIGNATURES))


def band_hashes(signatures: DataFrame, bands: int, rows: int) -> DataFrame:
    """(band, bhash, doc_id, is_new) for documents with at least one shingle.

    Band b covers signature values [b*rows, (b+1)*rows); Spark's xxhash64 of (band, values) names the bucket.
    A collision of two different bands only adds a candidate pair, which verification then rejects.
    """
    from pyspark.sql import functions as F

    entries = [
        F.struct(F.lit(b).alias("band"), F.xxhash64(F.lit(b), F.slice("minhash", b * rows + 1, rows)).alias("bhash"))
        for b in range(bands)
    ]
    return (
        signatures.where(F.col("n_shingles") > 0)
        .select("doc_id", "is_new", F.explode(F.array(*entries)).alias("e"))
        .select("e.band", "e.bhash", "doc_id", "is_new")
    )


def candidate_pairs(bands: DataFrame, max_bucket_size: int) -> DataFrame:
    """Distinct (a, b) with a < b sharing a bucket, at least one of them new."""
    from pyspark.sql import functions as F

    buckets = (
        bands.groupBy("band", "bhash")
        .agg(F.array_sort(F.collect_list(F.struct("doc_id", "is_new"))).alias("m"))
        .where((F.size("m") > 1) & F.exists("m", lambda x: x["is_new"]))
    )
    all_pairs = F.expr(
        "flatten(transform(m, (x, i) -> transform(slice(m, i + 2, size(m)),"
        " y -> named_struct('a', x.doc_id, 'b', y.doc_id, 'new', x.is_new OR y.is_new))))"
    )
    star = F.expr(
        "transform(slice(m, 2, size(m)), y -> named_struct('a', m[0].doc_id, 'b', y.doc_id, 'new', m[0].is_new OR y.is_new))"
    )
    pairs = buckets.select(F.explode(F.when(F.size("m") <= max_bucket_size, all_pairs).otherwise(star)).alias("p"))
    return pairs.where("p.new AND p.a != p.b").select("p.a", "p.b").distinct()


def estimated_jaccard(left: Column | str, right: Column | str) -> Column:
    """Fraction of equal signature values: datasketch's `MinHash.jaccard`, evaluated in the JVM."""
    from pyspark.sql import functions as F

    equal = F.zip_with(left, right, lambda p, q: (p == q).cast("int"))
    return (F.aggregate(equal, F.lit(0), lambda acc, e: acc + e) / F.size(left)).cast("float")


def verify_pairs(pairs: DataFrame, signatures: DataFrame, threshold: float | None) -> DataFrame:
    """(a, b, jaccard) with the signature estimate; pairs below `threshold` dropped (None keeps all)."""
    from pyspark.sql import functions as F

    sig = signatures.select("doc_id", "minhash")
    scored = (
        pairs.join(sig.withColumnRenamed("doc_id", "a").withColumnRenamed("minhash", "ma"), "a")
        .join(sig.withColumnRenamed("doc_id", "b").withColumnRenamed("minhash", "mb"), "b")
        .select("a", "b", estimated_jaccard("ma", "mb").alias("jaccard"))
    )
    return scored if threshold is None else scored.where(F.col("jaccard") >= F.lit(threshold))


class _ExactJaccardFunction:
    """The picklable body of `mapInArrow`: (left, right, jaccard, text_l, text_r) -> (left, right, jaccard).

    The estimate passes through where a text is missing (an earlier corpus keeps signatures, not texts).
    """

    def __init__(self, ngram: int) -> None:
        self.ngram = ngram

    def __call__(self, batches: Any) -> Any:
        import numpy as np

        from curate.steps.minhash import exact_jaccard

        for batch in batches:
            left, right = batch.column("text_l"), batch.column("text_r")
            exact = exact_jaccard(left, right, self.ngram)
            known = np.asarray(left.is_valid()) & np.asarray(right.is_valid())
            estimate = np.asarray(batch.column("jaccard").to_numpy(zero_copy_only=False), dtype=np.float32)
            values = np.where(known, exact, estimate).astype(np.float32)
            yield pa.RecordBatch.from_arrays(
                [batch.column("_l"), batch.column("_r"), pa.array(values, pa.float32())], names=["_l", "_r", "jaccard"]
            )


def with_exact_jaccard(
    pairs: DataFrame,
    texts: DataFrame,
    ngram: int,
    left: str = "a",
    right: str = "b",
    *,
    threshold: float = 0.0,
    margin: float = 1.0,
) -> DataFrame:
    """`pairs` (left, right, jaccard): the signature estimate replaced by the exact shingle-set Jaccard where
    it lies within `margin` of `threshold` (the pairs whose decision the estimate's error could flip)."""
    from pyspark.sql import functions as F

    # Both branches below read `pairs`: materialise it once instead of planning banding and joins twice.
    pairs = _cut_lineage(pairs.select(left, right, "jaccard"))
    near_threshold = F.abs(F.col("jaccard") - F.lit(threshold)) < F.lit(margin)
    settled = pairs.where(~near_threshold)
    near = pairs.where(near_threshold)  # a filter over materialised pairs: cheaper to redo than to store
    ids = near.select(F.col(left).alias("doc_id")).union(near.select(F.col(right).alias("doc_id"))).distinct()
    if ids.count() <= BROADCAST_IDS:
        # Usually few documents sit near the threshold: filter the texts map-side against their ids instead
        # of shuffling every text of the run into the two joins below.
        ids = F.broadcast(ids)
    needed = texts.join(ids, "doc_id", "left_semi")
    text_l = needed.select(F.col("doc_id").alias("_l"), F.col("text").alias("text_l"))
    text_r = needed.select(F.col("doc_id").alias("_r"), F.col("text").alias("text_r"))
    pairs = near
    joined = (
        pairs.select(F.col(left).alias("_l"), F.col(right).alias("_r"), "jaccard")
        .join(text_l, "_l", "left")
        .join(text_r, "_r", "left")
        .select("_l", "_r", "jaccard", "text_l", "text_r")
    )
    out = joined.mapInArrow(_ExactJaccardFunction(ngram), "_l string, _r string, jaccard float")
    return out.select(F.col("_l").alias(left), F.col("_r").alias(right), "jaccard").unionByName(settled)


# --- connected components ------------------------------------------------------------------------------


def _cut_lineage(df: DataFrame, *, eager: bool = True) -> DataFrame:
    # A reliable checkpoint when the session has a checkpoint directory, else executor-local storage:
    # either way each round plans from materialised edges instead of the whole history of rounds.
    # Not eager: the next action on the result materialises it, saving a job (each costs ~0.2 s).
    if df.sparkSession.sparkContext.getCheckpointDir():
        return df.checkpoint(eager=eager)
    return df.localCheckpoint(eager=eager)


def _large_star(edges: DataFrame) -> DataFrame:
    """Link every neighbour larger than a node to the smallest id of the node's neighbourhood."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    both = edges.select(F.col("src").alias("u"), F.col("dst").alias("v")).union(
        edges.select(F.col("dst").alias("u"), F.col("src").alias("v"))
    )
    # A window rather than groupBy + join: one exchange by node instead of three.
    smallest = F.least(F.min("v").over(Window.partitionBy("u")), F.col("u"))
    return (
        both.withColumn("m", smallest)
        .where(F.col("v") > F.col("u"))
        .select(F.col("v").alias("src"), F.col("m").alias("dst"))
    )  # repeated edges are harmless to the small star, which ends on a distinct: one shuffle fewer


def _small_star(edges: DataFrame) -> DataFrame:
    """Link a node and its smaller neighbours to the smallest of them (edges point to the smaller id)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    with_min = edges.withColumn("m", F.min("dst").over(Window.partitionBy("src")))
    return (
        with_min.select(F.explode(F.array("src", "dst")).alias("src"), F.col("m").alias("dst"))
        .where(F.col("src") != F.col("dst"))
        .distinct()
    )


def _is_star_forest(edges: DataFrame) -> bool:
    """Converged: every node has at most one edge to a smaller id, and that id has none (one aggregation)."""
    from pyspark.sql import functions as F

    roles = edges.select(F.col("src").alias("node"), F.lit(1).alias("as_src"), F.lit(0).alias("as_dst")).union(
        edges.select(F.col("dst").alias("node"), F.lit(0).alias("as_src"), F.lit(1).alias("as_dst"))
    )
    per_node = roles.groupBy("node").agg(F.sum("as_src").alias("s"), F.max("as_dst").alias("d"))
    return per_node.where((F.col("s") > 1) | ((F.col("s") > 0) & (F.col("d") > 0))).count() == 0


def connected_components(pairs: DataFrame, max_rounds: int = 40, *, oriented: bool = False) -> tuple[DataFrame, int]:
    """(doc_id, cluster_id) for every node of the undirected graph `pairs` (a, b); cluster_id = smallest id.

    `oriented=True` promises that `pairs` is materialised, distinct, with a < b (saves a pass).

    Alternating large-star and small-star (Kiveris et al., "Connected Components in MapReduce and Beyond",
    SoCC 2014) until the graph is a forest of stars centred on each component's minimum: O(log n) rounds,
    each a few shuffles, with lineage cut after every round.
    """
    from pyspark.sql import functions as F

    edges = pairs.select(F.greatest("a", "b").alias("src"), F.least("a", "b").alias("dst")).where(
        F.col("src") != F.col("dst")
    )
    if not oriented:
        edges = _cut_lineage(edges.distinct())
    # Real dedup graphs always hold some non-star component, so a first round is run without checking.
    rounds = 0
    converged = False
    while not converged:
        if rounds >= max_rounds:
            raise CurateError(f"connected components did not converge in {max_rounds} rounds: raise dedup.max_rounds")
        edges = _cut_lineage(_small_star(_large_star(edges)), eager=False)
        rounds += 1
        converged = _is_star_forest(edges)
    roots = edges.select(F.col("dst").alias("doc_id")).distinct().withColumn("cluster_id", F.col("doc_id"))
    members = edges.select(F.col("src").alias("doc_id"), F.col("dst").alias("cluster_id"))
    return members.union(roots), rounds


# --- choosing the kept document ------------------------------------------------------------------------


def keep_order(config: DedupConfig, columns: list[str]) -> list[Column]:
    """The window order of the keep rule over `columns` (the attributes available)."""
    from pyspark.sql import functions as F

    order: list[Column] = []
    for item in config.keep:
        name, _, direction = item.partition(" ")
        if name not in columns:
            if name in OPTIONAL_KEEP_COLUMNS:
                continue
            raise ConfigError(f"dedup.keep names column {name!r}, which the documents do not have")
        column = F.col(name)
        order.append(column.asc_nulls_last() if direction.strip() == "asc" else column.desc_nulls_last())
    order.append(F.col("doc_id").asc())
    return order


def keep_attributes(documents: DataFrame, config: DedupConfig) -> DataFrame:
    from pyspark.sql import functions as F

    wanted = {item.partition(" ")[0] for item in config.keep}
    columns = [F.col("doc_id")]
    if "text_length" in wanted and "text_length" not in documents.columns:
        # n_chars is the text's length when ingest filled it; fall back to counting for rows where it did not.
        length = F.char_length("text")
        if "n_chars" in documents.columns:
            length = F.coalesce(F.col("n_chars"), length)
        columns.append(length.alias("text_length"))
    columns += [F.col(name) for name in sorted(wanted) if name in documents.columns and name != "doc_id"]
    return documents.select(*columns)


def rank_members(
    components: DataFrame, attributes: DataFrame, config: DedupConfig, earlier: DataFrame | None = None
) -> DataFrame:
    """(doc_id, cluster_id, kept_doc_id) for every new document of a component, the kept one included.

    `earlier` holds the doc_ids of an earlier corpus. A component with earlier documents keeps the smallest
    earlier doc_id (the earlier corpus is never edited); otherwise the keep rule ranks its documents.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    window = Window.partitionBy("cluster_id").orderBy(*keep_order(config, attributes.columns))
    new = components if earlier is None else components.join(earlier, "doc_id", "left_anti")
    ranked = new.join(attributes, "doc_id").withColumn("kept_doc_id", F.first("doc_id").over(window))
    if earlier is not None:
        earliest = (
            components.join(earlier, "doc_id", "left_semi")
            .groupBy("cluster_id")
            .agg(F.min("doc_id").alias("earlier_kept"))
        )
        ranked = ranked.join(earliest, "cluster_id", "left").withColumn(
            "kept_doc_id", F.coalesce("earlier_kept", "kept_doc_id")
        )
    return ranked.select("doc_id", "cluster_id", "kept_doc_id")


def assign_stars(
    edges: DataFrame,
    signatures: DataFrame,
    attributes: DataFrame,
    config: DedupConfig,
    earlier: DataFrame | None = None,
    texts: DataFrame | None = None,
) -> tuple[DataFrame, dict[str, int]]:
    """(doc_id, kept_doc_id, jaccard) for every removed document: each within the threshold of its kept one.

    Connected components alone chain: A~B and B~C put A and C together however far apart they are (on the
    benchmark corpus, 6 of 6,687 merged pairs had a true Jaccard below 0.5). So a component only removes the
    members whose own Jaccard with the kept document (as `verify` measures it) reaches `kept_threshold`; the
    rest, with the component's earlier documents other than the kept one, form the residual graph (their
    verified edges among themselves), which the next pass clusters the same way. Every pass assigns at least each component's kept
    document, so the residual shrinks; after `max_passes` whatever is left is kept, never removed on a chain.
    """
    from pyspark.sql import functions as F

    threshold = config.kept_threshold
    sig = signatures.select("doc_id", "minhash")
    kept_sig = sig.select(F.col("doc_id").alias("kept_doc_id"), F.col("minhash").alias("kept_minhash"))
    removed: list[DataFrame] = []
    stats = {"rounds": 0, "passes": 0, "residual": 0}
    active = edges
    while True:
        components, rounds = connected_components(active, config.max_rounds, oriented=True)
        stats["rounds"] += rounds
        stats["passes"] += 1
        ranked = _cut_lineage(rank_members(components, attributes, config, earlier), eager=False)
        scored = (
            ranked.where(F.col("doc_id") != F.col("kept_doc_id"))
            .join(sig, "doc_id")
            .join(kept_sig, "kept_doc_id")
            .select("doc_id", "kept_doc_id", estimated_jaccard("minhash", "kept_minhash").alias("jaccard"))
        )
        if config.verify == "exact" and texts is not None:
            scored = with_exact_jaccard(
                scored,
                texts,
                config.minhash.ngram,
                "doc_id",
                "kept_doc_id",
                threshold=threshold,
                margin=config.exact_margin,
            )
        accepted = _cut_lineage(scored.where(F.col("jaccard") >= F.lit(threshold)))
        removed.append(accepted)
        settled = accepted.select("doc_id").union(ranked.select(F.col("kept_doc_id").alias("doc_id")))
        residual = components.select("doc_id").join(settled, "doc_id", "left_anti")
        if stats["passes"] >= config.max_passes:
            stats["residual"] = residual.count()
            break
        active = _cut_lineage(
            active.join(residual.select(F.col("doc_id").alias("a")), "a", "left_semi").join(
                residual.select(F.col("doc_id").alias("b")), "b", "left_semi"
            ),
            eager=False,
        )
        if active.isEmpty():
            break
    out = removed[0]
    for frame in removed[1:]:
        out = out.unionByName(frame)
    return out, stats


# --- the whole transform -------------------------------------------------------------------------------


def read_previous_signatures(spark: Any, previous: list[str], params: MinHashParams) -> DataFrame | None:
    """The stored signatures of earlier dedup stages, checked to be comparable with `params`."""
    frames = []
    for stage_dir in previous:
        manifest = read_manifest(stage_dir)
        if manifest is None:
            raise ConfigError(f"dedup.previous: {stage_dir} is not a finished near-dedup stage (no _manifest.json)")
        stored = manifest.extra.get("signature_config")
        if stored != params.signature_config():
            raise ConfigError(
                f"dedup.previous: {stage_dir} has signatures made with {stored}, this run uses "
                f"{params.signature_config()}: signatures must share num_perm, ngram and seed"
            )
        frames.append(
            spark.read.schema(spark_schema(SIGNATURES)).parquet(fs.to_uri(fs.join(stage_dir, SIGNATURES_DIR)))
        )
    if not frames:
        return None
    combined = frames[0]
    for frame in frames[1:]:
        combined = combined.unionByName(frame)
    # The same record kept by two earlier stages (one crawl deduplicated twice) must stay one graph node.
    return combined.dropDuplicates(["doc_id"]) if len(frames) > 1 else combined


def find_duplicates(
    signatures: DataFrame,
    attributes: DataFrame,
    config: DedupConfig,
    previous: DataFrame | None = None,
    timings: dict[str, float] | None = None,
    texts: DataFrame | None = None,
) -> tuple[DataFrame, dict[str, int]]:
    """DUPLICATES rows for this run's documents, and counts of the intermediate sets.

    `texts` (doc_id, text) of this run's documents is what `verify: exact` measures; without it the
    signature estimate is used.

    `signatures` should be materialised (read from Parquet or persisted): it is read several times.
    `timings` (if given) receives the seconds spent materialising candidates and components.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    params = config.minhash
    bands, rows = params.bands_rows
    current = signatures.select("doc_id", "minhash", "n_shingles", F.lit(True).alias("is_new"))
    reseen = None
    if previous is not None:
        earlier = previous.select("doc_id", "minhash", "n_shingles", F.lit(False).alias("is_new"))
        # A document already in the earlier corpus (same doc_id) is the same record fetched again.
        reseen = current.join(earlier.select("doc_id"), "doc_id", "left_semi")
        current = current.join(earlier.select("doc_id"), "doc_id", "left_anti")
        nodes_all = current.unionByName(earlier)
    else:
        nodes_all = current

    # Candidates are scored once and materialised; the threshold is a filter on the stored scores.
    with _timed(timings, "candidates"):
        candidates = candidate_pairs(band_hashes(nodes_all, bands, rows), config.max_bucket_size)
        scored = verify_pairs(candidates, nodes_all, None)
        if config.verify == "exact" and texts is not None:
            scored = with_exact_jaccard(
                scored, texts, params.ngram, threshold=params.threshold, margin=config.exact_margin
            )
        scored = _cut_lineage(scored)
    threshold = config.edge_threshold
    edges = scored.where(F.col("jaccard") >= F.lit(threshold))
    with _timed(timings, "components"):
        earlier_ids = None if previous is None else nodes_all.where(~F.col("is_new")).select("doc_id")
        removed, star_stats = assign_stars(edges, nodes_all, attributes, config, earlier_ids, texts)
    # A star's cluster_id is its smallest doc_id: unique, since every document is in at most one star.
    duplicates = removed.withColumn(
        "cluster_id", F.least("kept_doc_id", F.min("doc_id").over(Window.partitionBy("kept_doc_id")))
    ).select("doc_id", "cluster_id", "kept_doc_id", "jaccard")
    if reseen is not None:
        duplicates = duplicates.unionByName(
            reseen.select(
                "doc_id",
                F.col("doc_id").alias("cluster_id"),
                F.col("doc_id").alias("kept_doc_id"),
                F.lit(1.0).cast("float").alias("jaccard"),
            )
        )
    counts = scored.agg(F.count("*"), F.count(F.when(F.col("jaccard") >= F.lit(threshold), 1))).collect()[0]
    stats = {"bands": bands, "rows": rows, "candidate_pairs": counts[0], "edges": counts[1], **star_stats}
    return conform_frame(duplicates, DUPLICATES), stats


def conform_frame(df: DataFrame, schema: pa.Schema) -> DataFrame:
    """`df` with exactly the columns and types of `schema`."""
    from pyspark.sql import functions as F

    return df.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in spark_schema(schema).fields])


def mark_duplicates(documents: DataFrame, duplicates: DataFrame) -> DataFrame:
    """`documents` plus drop columns: removed documents get `near_duplicate` and the kept doc in the detail."""
    from pyspark.sql import functions as F

    info = duplicates.select("doc_id", F.col("kept_doc_id").alias("_kept"), F.col("jaccard").alias("_jaccard"))
    marked = documents.join(info, "doc_id", "left")
    removed = F.col("_kept").isNotNull()
    detail = F.format_string("kept %s jaccard %.3f", F.col("_kept"), F.col("_jaccard"))
    out = marked.select(
        *[F.col(c) for c in documents.columns],
        F.when(removed, F.lit(NEAR_DUPLICATE)).alias(DROP_REASON),
        F.when(removed, detail).alias(DROP_DETAIL),
    )
    lineage = [c for c in ("warc_path", "warc_record_offset") if c in documents.columns]
    return out.sortWithinPartitions(*lineage, "doc_id")


def deduplicate(
    documents: DataFrame, config: DedupConfig | None = None, previous: DataFrame | None = None
) -> DedupResult:
    """The whole transform on DataFrames (the stage adds Parquet output, scratch and the manifest).

    Signatures are persisted here so MinHash runs once per document; call `result.signatures.unpersist()`
    when done.
    """
    from pyspark import StorageLevel

    config = config or DedupConfig()
    signatures = compute_signatures(documents, config.minhash).persist(StorageLevel.MEMORY_AND_DISK)
    texts = documents.select("doc_id", "text")
    duplicates, stats = find_duplicates(signatures, keep_attributes(documents, config), config, previous, texts=texts)
    return DedupResult(mark_duplicates(documents, duplicates), duplicates, signatures, stats)


# --- the stage ------------------------------------------------------------------------------------------


def run_near_dedup(ctx: RunContext, inputs: Inputs, config: DedupConfig) -> Manifest:
    """Near-dedup the documents of `inputs.stages[0]`; `inputs.stages[1:]` are near-dedup stages of earlier
    crawls, whose stored signatures join the banding and whose documents are never removed.

    Besides the kept documents and `_rejected/`, the stage holds `_duplicates/` (DUPLICATES: every removal
    with its cluster, kept document and Jaccard estimate) and `_signatures/` (SIGNATURES of the kept
    documents: the index a later crawl is deduplicated against). Always runs on Spark (a local[*] session
    under the local runner): clustering is a distributed job.
    """
    from pyspark.sql import functions as F

    from curate.stage import count_rows, open_stage, write_spark_output

    source, *previous = inputs.stages
    for stage_dir in previous:
        if read_manifest(stage_dir) is None:
            raise ConfigError(f"dedup.previous: {stage_dir} is not a finished near-dedup stage (no _manifest.json)")
    step = MinHashStep(config.minhash)
    with open_stage(
        ctx,
        inputs,
        config={"dedup": config.to_dict(), "previous": previous, "steps": {step.name: step.config()}},
        steps=[step.name, NEAR_DEDUP_STEP],
    ) as stage:
        if not stage.pending:
            return stage.result
        spark = ctx.spark
        timings: dict[str, float] = {}
        documents = spark.read.parquet(fs.to_uri(source))
        rows_in = count_rows(ctx, source)

        # Scratch lives beside the staged output: the kept-documents write replaces the whole staged directory.
        work = stage.path + ".work"
        fs.remove_tree(work)
        signatures_path = fs.join(work, "signatures")
        with _timed(timings, "signatures"):
            compute_signatures(documents, config.minhash).write.mode("overwrite").parquet(fs.to_uri(signatures_path))
        signatures = spark.read.parquet(fs.to_uri(signatures_path))
        prior = read_previous_signatures(spark, previous, config.minhash)
        texts = documents.select("doc_id", "text")
        duplicates, stats = find_duplicates(
            signatures, keep_attributes(documents, config), config, prior, timings, texts=texts
        )
        work_duplicates = fs.join(work, "duplicates")
        with _timed(timings, "keep_rule"):
            duplicates.sortWithinPartitions("cluster_id", "doc_id").write.mode("overwrite").parquet(
                fs.to_uri(work_duplicates)
            )
        duplicates = spark.read.parquet(fs.to_uri(work_duplicates))
        with _timed(timings, "write_documents"):
            counts = write_spark_output(stage, mark_duplicates(documents, duplicates))

        duplicates_path = fs.join(stage.tmp_path, DUPLICATES_DIR)
        fs.rename(work_duplicates, duplicates_path)
        duplicates = spark.read.parquet(fs.to_uri(duplicates_path))
        with _timed(timings, "write_index"):
            kept_signatures = signatures.join(duplicates.select("doc_id"), "doc_id", "left_anti")
            kept_signatures.sortWithinPartitions("doc_id").write.mode("overwrite").parquet(
                fs.to_uri(fs.join(stage.tmp_path, SIGNATURES_DIR))
            )
            clusters = duplicates.select(F.countDistinct("cluster_id")).first()
        fs.remove_tree(work)
        extra = {
            **stats,
            "clusters": int(clusters[0]) if clusters else 0,
            "signature_config": config.minhash.signature_config(),
            "previous": previous,
            "seconds": timings,
        }
        stage.finish(rows_in=rows_in, rows_out=counts.rows_out, drops=counts.drops, extra=extra)
    return stage.result
