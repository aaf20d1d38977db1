"""Near-dedup on Spark: planted near-duplicates of real pages, determinism, incremental (cross-dump) mode."""

from __future__ import annotations

import hashlib
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support.near_duplicates import PlantedCorpus, evaluate, jaccard, load_real_documents, plant
from support.runs import commit_table_as_stage

from curate.manifest import read_manifest
from curate.schema import DOCUMENTS, DUPLICATES, SIGNATURES
from curate.stage import Inputs, RunContext
from curate.stage_rows import read_rejected_table, read_stage_table
from curate.stages.dedup import DedupConfig, deduplicate, run_near_dedup
from curate.stages.dedup.components import connected_components
from curate.stages.registry import DUPLICATES_DIR, NEAR_DEDUP, SIGNATURES_DIR
from curate.step import conform
from curate.steps.minhash import shingles

pytestmark = pytest.mark.spark

SCORED = DOCUMENTS.append(pa.field("math_score", pa.float32()))


def _score(doc_id: str) -> float:
    # A deterministic stand-in for the classifier's score, so the default keep rule has something to rank.
    return int(hashlib.sha256(doc_id.encode()).hexdigest()[:6], 16) / 0xFFFFFF


def _documents(corpus: PlantedCorpus) -> pa.Table:
    table = corpus.table()
    table = table.append_column("math_score", pa.array([_score(d) for d in corpus.doc_ids], pa.float32()))
    return pa.Table.from_batches([conform(b, SCORED) for b in table.to_batches()], schema=SCORED)


@pytest.fixture(scope="module")
def real_documents(shared_data: Path) -> list[tuple[str, str, str]]:
    return load_real_documents(shared_data, per_source=45)


def _split(documents: list[tuple[str, str, str]], first: int) -> tuple[list, list]:
    """The first `first` documents of each source, and the rest (held out for a later dump)."""
    seen: dict[str, int] = defaultdict(int)
    head, tail = [], []
    for doc in documents:
        kind = doc[0].split("-")[0]
        (head if seen[kind] < first else tail).append(doc)
        seen[kind] += 1
    return head, tail


@pytest.fixture(scope="module")
def corpus(real_documents: list[tuple[str, str, str]]) -> PlantedCorpus:
    # 40 real documents from each source (web text, math Q&A, extracted HTML), 3 variants of 40 of them.
    return plant(_split(real_documents, 40)[0], n_sources=40)


@pytest.fixture(scope="module")
def staged(spark, corpus: PlantedCorpus, tmp_path_factory: pytest.TempPathFactory) -> tuple[RunContext, str]:
    ctx = RunContext(str(tmp_path_factory.mktemp("run")), master="local[2]").use_session(spark)
    source = commit_table_as_stage(ctx, "02_url_dedup", _documents(corpus))
    # Two shuffle partitions here, eight in the determinism test: the outputs must not differ.
    previous = spark.conf.get("spark.sql.shuffle.partitions")
    spark.conf.set("spark.sql.shuffle.partitions", "2")
    try:
        run_near_dedup(ctx, Inputs(NEAR_DEDUP.name(), stages=(source,)), DedupConfig())
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", previous)
    return ctx, source


def _clusters(rows: list[dict]) -> tuple[dict[str, str], dict[str, str]]:
    cluster_of: dict[str, str] = {}
    kept_of: dict[str, str] = {}
    for row in rows:
        cluster_of[row["doc_id"]] = cluster_of[row["kept_doc_id"]] = row["cluster_id"]
        kept_of[row["doc_id"]] = row["kept_doc_id"]
    return cluster_of, kept_of


def test_planted_duplicates_found_and_nothing_dissimilar_merged(staged, corpus: PlantedCorpus) -> None:
    ctx, _ = staged
    stage_dir = ctx.stage_dir(NEAR_DEDUP.name())
    duplicates = read_stage_table(f"{stage_dir}/{DUPLICATES_DIR}")
    assert duplicates.schema.names == DUPLICATES.names
    cluster_of, kept_of = _clusters(duplicates.to_pylist())
    quality = evaluate(corpus, cluster_of, kept_of)
    assert quality.positives >= 60, quality
    assert quality.recall >= 0.95, quality
    assert quality.merged_below == 0 and quality.removed_below == 0, quality

    # Every removal is a drop with its reason, and the books balance.
    manifest = read_manifest(stage_dir)
    assert manifest is not None and manifest.balanced
    assert manifest.drops == {"near_duplicate": duplicates.num_rows}
    assert manifest.extra["bands"] * manifest.extra["rows"] <= 128
    rejected = read_rejected_table(stage_dir)
    assert sorted(rejected.column("doc_id").to_pylist()) == sorted(duplicates.column("doc_id").to_pylist())
    assert set(rejected.column("drop_reason").to_pylist()) == {"near_duplicate"}
    assert all(detail.startswith("kept ") for detail in rejected.column("drop_detail").to_pylist())
    kept = read_stage_table(stage_dir)
    assert kept.schema.names == SCORED.names
    assert kept.num_rows + duplicates.num_rows == len(corpus.doc_ids)
    assert not set(kept.column("doc_id").to_pylist()) & set(duplicates.column("doc_id").to_pylist())

    # Default keep rule: the highest math_score of each cluster survives.
    members: dict[str, list[str]] = defaultdict(list)
    for doc_id, cluster in cluster_of.items():
        members[cluster].append(doc_id)
    for cluster, ids in members.items():
        best = min(ids, key=lambda d: (-np.float32(_score(d)), d))
        assert {kept_of.get(d, d) for d in ids} == {best}, cluster

    signatures = read_stage_table(f"{stage_dir}/{SIGNATURES_DIR}")
    assert signatures.schema.names == SIGNATURES.names
    assert sorted(signatures.column("doc_id").to_pylist()) == sorted(kept.column("doc_id").to_pylist())


def test_rerun_is_skipped(staged) -> None:
    ctx, source = staged
    before = (Path(ctx.stage_dir(NEAR_DEDUP.name())) / "_manifest.json").read_text()
    run_near_dedup(ctx, Inputs(NEAR_DEDUP.name(), stages=(source,)), DedupConfig())
    assert (Path(ctx.stage_dir(NEAR_DEDUP.name())) / "_manifest.json").read_text() == before


def test_same_output_across_runs_and_shuffle_partitions(spark, staged) -> None:
    ctx, source = staged
    reference = read_stage_table(f"{ctx.stage_dir(NEAR_DEDUP.name())}/{DUPLICATES_DIR}")
    previous = spark.conf.get("spark.sql.shuffle.partitions")
    spark.conf.set("spark.sql.shuffle.partitions", "8")
    try:
        # A second run from the documents (signatures recomputed), with eight shuffle partitions instead of two.
        result = deduplicate(spark.read.parquet(source))
        rows = result.duplicates.collect()
        result.signatures.unpersist()
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", previous)
    assert sorted(tuple(r) for r in rows) == sorted(tuple(r.values()) for r in reference.to_pylist())


def test_incremental_dedup_against_an_earlier_dump(
    spark, staged, corpus: PlantedCorpus, real_documents: list[tuple[str, str, str]], tmp_path: Path
) -> None:
    ctx, _ = staged
    earlier_stage = ctx.stage_dir(NEAR_DEDUP.name())
    earlier_kept = set(read_stage_table(earlier_stage, ["doc_id"]).column("doc_id").to_pylist())
    # The earlier dump's documents are not needed: only its stored signatures and manifest travel.
    earlier = tmp_path / "earlier" / NEAR_DEDUP.name()
    earlier.mkdir(parents=True)
    shutil.copytree(f"{earlier_stage}/{SIGNATURES_DIR}", earlier / SIGNATURES_DIR)
    shutil.copy(f"{earlier_stage}/_manifest.json", earlier / "_manifest.json")

    # A later crawl: fresh variants of 30 earlier pages (another seed), plus 15 pages never seen before.
    sources = [d for d in corpus.doc_ids if corpus.family[d] == d][:30]
    text_of = dict(zip(corpus.doc_ids, corpus.texts, strict=True))
    fresh = plant([(d, f"url:{d}", text_of[d]) for d in sources], n_sources=30, seed=1, variants_per_source=2)
    dump = fresh.subset(d for d in fresh.doc_ids if "~" in d)
    for doc_id, url, text in _split(real_documents, 40)[1]:
        dump.add(doc_id, url, text, doc_id)
    dump = PlantedCorpus(
        [f"{d}@2" for d in dump.doc_ids], dump.urls, dump.texts, {f"{d}@2": s for d, s in dump.family.items()}
    )

    ctx2 = RunContext(str(tmp_path / "dump2"), master="local[2]").use_session(spark)
    source2 = commit_table_as_stage(ctx2, "02_url_dedup", _documents(dump))
    manifest = run_near_dedup(ctx2, Inputs(NEAR_DEDUP.name(), stages=(source2, str(earlier))), DedupConfig())
    assert manifest.balanced and manifest.extra["previous"] == [str(earlier)]
    duplicates = read_stage_table(f"{ctx2.stage_dir(NEAR_DEDUP.name())}/{DUPLICATES_DIR}").to_pylist()
    kept_of = {r["doc_id"]: r["kept_doc_id"] for r in duplicates}
    # Only new documents are removed; each in favour of an earlier kept document or another new one.
    assert set(kept_of) <= set(dump.doc_ids)
    assert all(k in earlier_kept or k in set(dump.doc_ids) for k in kept_of.values())

    all_text = {**text_of, **dict(zip(dump.doc_ids, dump.texts, strict=True))}
    sh = {d: shingles(t) for d, t in all_text.items()}
    should = [
        d
        for d in dump.doc_ids
        if any(jaccard(sh[d], sh[e]) >= 0.85 for e in earlier_kept if corpus.family.get(e) == dump.family[d])
    ]
    found = [d for d in should if kept_of.get(d) in earlier_kept]
    assert len(should) >= 10 and len(found) >= 0.95 * len(should), (len(found), len(should))
    assert all(jaccard(sh[d], sh[k]) >= 0.5 for d, k in kept_of.items())


@pytest.mark.parametrize("driver_max_edges", [0, 1_000], ids=["distributed rounds", "on the driver"])
def test_connected_components_chain_and_stars(spark, driver_max_edges: int) -> None:
    chain = [(f"c{i:02d}", f"c{i + 1:02d}") for i in range(8)]
    star = [("s0", f"s{i}") for i in range(1, 6)]
    mixed = [("m5", "m4"), ("m3", "m9"), ("m4", "m9"), ("m1", "m3")]
    pairs = spark.createDataFrame(chain[::-1] + star + mixed, "a string, b string")
    components, rounds = connected_components(pairs, driver_max_edges=driver_max_edges)
    labels = dict(components.collect())
    assert {labels[f"c{i:02d}"] for i in range(9)} == {"c00"}
    assert {labels[f"s{i}"] for i in range(6)} == {"s0"}
    assert {labels[m] for m in ("m1", "m3", "m4", "m5", "m9")} == {"m1"}
    assert len(labels) == 9 + 6 + 5 and components.count() == len(labels)
    # A chain is not a star: distributed, it takes real rounds, which must converge.
    assert rounds >= 2 if driver_max_edges == 0 else rounds == 0


def test_driver_labels_equal_union_find_on_random_graphs() -> None:
    import random

    import pyarrow as pa

    from curate.stages.dedup.components import smallest_id_labels

    rng = random.Random(7)
    for _ in range(200):
        size = rng.randrange(2, 60)
        edges = [(f"n{rng.randrange(size):03d}", f"n{rng.randrange(size):03d}") for _ in range(rng.randrange(1, 80))]
        parent: dict[str, str] = {}

        def root(node: str, parent: dict[str, str] = parent) -> str:
            parent.setdefault(node, node)
            while parent[node] != node:
                node = parent[node]
            return node

        for a, b in edges:
            ra, rb = root(a), root(b)
            parent[max(ra, rb)] = min(ra, rb)
        expected = {node: root(node) for edge in edges for node in edge}
        table = smallest_id_labels(pa.array([a for a, _ in edges]), pa.array([b for _, b in edges]))
        assert (
            dict(zip(table.column("doc_id").to_pylist(), table.column("cluster_id").to_pylist(), strict=True))
            == expected
        )


def test_a_chain_of_near_duplicates_is_cut_where_it_drifts_from_the_kept_document(spark) -> None:
    from curate.stages.dedup import DedupConfig
    from curate.stages.dedup.stage import find_duplicates

    # Signatures of a drifting chain A ~ B ~ C ~ D: each link changes 30 of 128 values (estimated Jaccard
    # 0.77 > 0.7), so A and C agree on only 68 (0.53) and A and D on 38. Connected components alone put all
    # four under A; A must remove B only, and C (longest of what is left) must remove D in a second pass.
    base = list(range(128))
    chain = {"A": base}
    for name, previous, start in (("B", "A", 0), ("C", "B", 30), ("D", "C", 60)):
        chain[name] = [
            v + 1000 * (ord(name) - 64) if start <= i < start + 30 else v for i, v in enumerate(chain[previous])
        ]
    signatures = spark.createDataFrame(
        [(name, values, 100) for name, values in chain.items()], "doc_id string, minhash array<bigint>, n_shingles int"
    )
    lengths = {"A": 400, "B": 300, "C": 200, "D": 100}
    attributes = spark.createDataFrame(list(lengths.items()), "doc_id string, text_length bigint")
    duplicates, stats = find_duplicates(signatures, attributes, DedupConfig())
    rows = {r["doc_id"]: (r["kept_doc_id"], r["cluster_id"], round(r["jaccard"], 3)) for r in duplicates.collect()}
    assert rows == {"B": ("A", "A", round(98 / 128, 3)), "D": ("C", "C", round(98 / 128, 3))}
    assert stats["passes"] == 2 and stats["edges"] == 3


def test_exact_verification_measures_the_shingle_sets(spark, staged, corpus: PlantedCorpus) -> None:
    from curate.stages.dedup import DedupConfig

    _, source = staged
    result = deduplicate(spark.read.parquet(source), DedupConfig(verify="exact"))
    rows = [r.asDict() for r in result.duplicates.collect()]
    result.signatures.unpersist()
    # Every removed document's true Jaccard with its kept one clears 0.7; within exact_margin (0.15) of the
    # threshold the stored figure is the exact one, not the estimate.
    text_of = dict(zip(corpus.doc_ids, corpus.texts, strict=True))
    exact_rows = 0
    for row in rows:
        truth = jaccard(shingles(text_of[row["doc_id"]]), shingles(text_of[row["kept_doc_id"]]))
        assert truth >= 0.7 and row["jaccard"] >= 0.7, (row, truth)
        if row["jaccard"] < 0.85:
            exact_rows += 1
            assert abs(row["jaccard"] - truth) < 1e-3, (row, truth)
    assert exact_rows >= 5 and len(rows) >= 60


@pytest.mark.parametrize("with_earlier", [False, True], ids=["one crawl", "against an earlier crawl"])
@pytest.mark.parametrize("verify", ["exact", "signature"])
def test_star_passes_and_exact_jaccard_on_the_driver_equal_the_distributed_passes(
    spark, staged, verify: str, with_earlier: bool
) -> None:
    from pyspark.sql import functions as F

    from curate.stages.dedup.keep import keep_attributes
    from curate.stages.dedup.signatures import compute_signatures
    from curate.stages.dedup.stage import find_duplicates

    _, source = staged
    # Scores with ties, NaN and nulls, so the keep order's edge cases (Spark's, nulls last, NaN above every
    # number) decide some clusters, and text length or doc_id others.
    bucket = F.abs(F.hash("doc_id")) % 6
    documents = spark.read.parquet(source).withColumn(
        "math_score",
        F.when(bucket == 0, F.lit(None).cast("float"))
        .when(bucket == 1, F.lit(float("nan")).cast("float"))
        .otherwise(F.round("math_score", 1).cast("float")),
    )
    config = DedupConfig(verify=verify, keep=("math_score desc", "text_length asc"))
    signatures = compute_signatures(documents, config.minhash).localCheckpoint()
    previous = None
    if with_earlier:
        earlier = F.abs(F.hash("doc_id", F.lit("earlier"))) % 3 == 0
        previous, signatures = signatures.where(earlier), signatures.where(~earlier)
        documents = documents.join(signatures.select("doc_id"), "doc_id", "left_semi")
    texts = documents.select("doc_id", "text")
    results = {}
    paths = {"driver": (1_000_000, 10**9), "driver, shingles too many": (1_000_000, 1000), "distributed": (0, 0)}
    for path, (limit, shingle_bytes) in paths.items():
        duplicates, stats = find_duplicates(
            signatures,
            keep_attributes(documents, config),
            config,
            previous,
            texts=texts,
            driver_max_edges=limit,
            driver_max_documents=limit,
            driver_max_shingle_bytes=shingle_bytes,
        )
        results[path] = (sorted(tuple(row) for row in duplicates.collect()), {**stats, "rounds": 0})
    assert results["driver"] == results["distributed"] == results["driver, shingles too many"]
    rows = results["driver"][0]
    assert len(rows) >= 30 and len({row[2] for row in rows}) >= 10


@pytest.mark.parametrize("max_bucket_size", [2, 64], ids=["star buckets", "all pairs"])
@pytest.mark.parametrize("with_earlier", [False, True], ids=["one crawl", "against an earlier crawl"])
def test_candidates_on_the_driver_equal_the_distributed_banding(
    spark, staged, with_earlier: bool, max_bucket_size: int
) -> None:
    from pyspark.sql import functions as F

    from curate.stages.dedup.candidates import band_hashes, candidate_pairs, verify_pairs
    from curate.stages.dedup.candidates_on_driver import fetch_nodes, scored_candidates
    from curate.stages.dedup.signatures import compute_signatures

    _, source = staged
    config = DedupConfig(max_bucket_size=max_bucket_size)
    signatures = compute_signatures(spark.read.parquet(source), config.minhash).localCheckpoint()
    nodes = signatures.select("doc_id", "minhash", "n_shingles", F.lit(True).alias("is_new"))
    if with_earlier:
        earlier = F.abs(F.hash("doc_id", F.lit("earlier"))) % 3 == 0
        nodes = nodes.where(~earlier).unionByName(nodes.where(earlier).withColumn("is_new", F.lit(False)))
    bands, rows = config.minhash.bands_rows
    distributed = verify_pairs(candidate_pairs(band_hashes(nodes, bands, rows), max_bucket_size), nodes, None)
    expected = sorted(tuple(row) for row in distributed.collect())
    fetched = fetch_nodes(nodes)
    assert fetched is not None
    on_driver = scored_candidates(fetched, bands, rows, max_bucket_size).to_pylist()
    assert sorted(tuple(row.values()) for row in on_driver) == expected
    assert len(expected) >= 50
    # Over the node bound, the driver declines and the distributed banding runs.
    assert fetch_nodes(nodes, max_nodes=10) is None


def test_exact_jaccard_on_the_driver_equals_the_spark_measurement(spark, staged) -> None:
    from curate.stages.dedup.candidates import with_exact_jaccard
    from curate.stages.dedup.exact_on_driver import DriverShingleSets

    _, source = staged
    documents = spark.read.parquet(source)
    texts = documents.select("doc_id", "text").unionByName(
        spark.createDataFrame([("null-text", None)], "doc_id string, text string")
    )
    ids = sorted(row.doc_id for row in documents.select("doc_id").collect())
    rng = np.random.default_rng(7)
    # Real documents paired at random and with themselves, and pairs with a document the texts lack (as an
    # earlier crawl's) or whose text is null; estimates all over, and at the margin's two edges in float32.
    left = [*rng.choice(ids, 300), *ids[:20], ids[4], ids[6], "not-in-texts", ids[0], "null-text", ids[1]]
    right = [*rng.choice(ids, 300), *ids[:20], ids[5], ids[7], ids[2], "not-in-texts", ids[3], "null-text"]
    estimate = np.concatenate([rng.uniform(0.3, 1.0, 320), [0.55, 0.85], [0.7, 0.75, 0.7, 0.6]]).astype(np.float32)
    pairs = pa.table({"doc_id": left, "kept_doc_id": right, "jaccard": pa.array(estimate, pa.float32())})

    on_spark = with_exact_jaccard(
        spark.createDataFrame(pairs, "doc_id string, kept_doc_id string, jaccard float"),
        texts,
        5,
        "doc_id",
        "kept_doc_id",
        threshold=0.7,
        margin=0.15,
    ).collect()
    driver_sets = DriverShingleSets.fetch(texts, pa.array(left + right), 5, n_shingles=10**6)
    assert driver_sets is not None
    on_driver = driver_sets.measured(pairs, "doc_id", "kept_doc_id", threshold=0.7, margin=0.15)

    assert sorted(tuple(row) for row in on_spark) == sorted(tuple(row.values()) for row in on_driver.to_pylist())
    measured = np.asarray(on_driver.column("jaccard")) != estimate
    assert measured.sum() >= 100
    # In float32, 0.55 lies just inside the margin and 0.85 just outside; a missing text keeps the estimate.
    assert measured[-6:].tolist() == [True, False, False, False, False, False]
    assert DriverShingleSets.fetch(texts, pa.array(left), 5, n_shingles=251, max_bytes=1000) is None


def test_outputs_written_on_the_driver_equal_the_spark_writes(spark, corpus: PlantedCorpus, tmp_path: Path) -> None:
    from curate.stages.dedup.stage import near_dedup_stage

    outputs = {}
    for path, limit in (("driver", 100_000), ("spark", 0)):
        ctx = RunContext(str(tmp_path / path), master="local[2]").use_session(spark)
        source = commit_table_as_stage(ctx, "02_url_dedup", _documents(corpus))
        near_dedup_stage(ctx, Inputs(NEAR_DEDUP.name(), stages=(source,)), DedupConfig(), driver_max_documents=limit)
        stage_dir = ctx.stage_dir(NEAR_DEDUP.name())
        manifest = read_manifest(stage_dir)
        assert manifest is not None and manifest.balanced
        tables = {
            "kept": read_stage_table(stage_dir),
            "rejected": read_rejected_table(stage_dir),
            "duplicates": read_stage_table(f"{stage_dir}/{DUPLICATES_DIR}"),
            "signatures": read_stage_table(f"{stage_dir}/{SIGNATURES_DIR}"),
        }
        outputs[path] = {
            **{name: sorted(table.to_pylist(), key=lambda row: row["doc_id"]) for name, table in tables.items()},
            "schemas": {name: table.schema.names for name, table in tables.items()},
            "manifest": (manifest.rows_in, manifest.rows_out, manifest.drops, manifest.problems),
            "extra": {key: value for key, value in manifest.extra.items() if key != "seconds"},
            "files": sorted(p.name for p in Path(stage_dir).glob("*.parquet")),
        }
    driver, on_spark = outputs["driver"], outputs["spark"]
    assert driver["files"] == ["part-00000.parquet"] and on_spark["files"] != driver["files"]
    for key in ("kept", "rejected", "duplicates", "signatures", "schemas", "manifest", "extra"):
        assert driver[key] == on_spark[key], key
    details = [row["drop_detail"] for row in driver["rejected"]]
    assert len(details) >= 60 and all(detail.startswith("kept ") for detail in details)


def test_minhash_spreads_a_file_of_one_row_group_over_the_cores(spark, tmp_path: Path) -> None:
    from pyspark.sql import functions as F

    from curate.stages.dedup.signatures import compute_signatures

    # Over 8 MB: Spark reads the file as two splits, but only the split holding the row group's start has rows.
    rng = np.random.default_rng(3)
    words = np.array([f"w{i}" for i in range(50_000)])
    texts = [" ".join(rng.choice(words, 1500)) for _ in range(1500)]
    path = tmp_path / "one-group.parquet"
    pq.write_table(pa.table({"doc_id": [f"d{i:05d}" for i in range(1500)], "text": texts}), path)
    assert pq.ParquetFile(path).metadata.num_row_groups == 1 and path.stat().st_size > 8 * 2**20
    documents = spark.read.parquet(str(path))
    assert documents.rdd.getNumPartitions() >= 2

    signatures = compute_signatures(documents, DedupConfig().minhash)
    per_task = signatures.select(F.spark_partition_id().alias("task")).groupBy("task").count().collect()
    assert len(per_task) >= 2 and sum(row["count"] for row in per_task) == 1500
