"""Near-dedup side by side with its peers, on real documents plus planted near-duplicates.

Three measurements:
1. Signature throughput: `curate.steps.minhash.signatures` (vectorised over 1,000-document batches) vs
   datasketch 2.0's per-document `MinHash.update` loop over the same shingles with the same 32-bit shingle
   hash (`hashfunc=shingle_hash32`), so the values are identical, which is checked. `update_batch` is shown
   too, as datasketch's own faster path. Single thread, text to signature, median of `--repeat` runs.
2. Planted-duplicate recall and precision (`support.near_duplicates`) of both pipelines:
   recall over same-family pairs with exact Jaccard >= 0.85, and merged pairs below 0.5.
3. End-to-end dedup wall time: the curate Spark stage (local[2]: signatures, banding, verification,
   components, the kept/rejected/duplicates/signature outputs) vs datatrove's four MinHash stages
   (MinhashDedupSignature -> Buckets -> Cluster -> Filter, LocalPipelineExecutor, 2 workers, the same
   14 bands x 9 rows and 5-grams), both from the same Parquet documents to written output. The Spark
   session start (a JVM, paid once per run of the CLI) is reported separately.

The VM is noisy (±20-30 %, more when other jobs run): compare ratios within one invocation.

    python benchmarks/dedup.py [--data DIR] [--per-source N] [--sources N] [--variants N] [--repeat N]
                               [--spark-runs N] [--skip-datatrove] [--verify exact|signature|none]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from _paths import ROOT
from support.near_duplicates import (
    ClusteringQuality,
    PlantedCorpus,
    evaluate,
    load_real_documents,
    plant,
)

from curate.steps.minhash import MinHashParams, permutations, shingle_hash32, shingles, signatures

BATCH = 1000


def _median_time(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def signature_throughput(texts: list[str], params: MinHashParams, repeat: int, reference_docs: int) -> dict:
    from datasketch import MinHash

    perms = permutations(params.num_perm, params.seed)
    mb = sum(len(t.encode()) for t in texts) / 1e6

    def ours() -> np.ndarray:
        return np.vstack(
            [signatures(pa.array(texts[i : i + BATCH]), params, perms)[0] for i in range(0, len(texts), BATCH)]
        )

    ours_matrix = ours()
    ours_s = _median_time(ours, repeat)

    subset = texts[:reference_docs]
    sub_mb = sum(len(t.encode()) for t in subset) / 1e6

    def datasketch_update() -> list[np.ndarray]:
        out = []
        for text in subset:
            m = MinHash(num_perm=params.num_perm, seed=params.seed, hashfunc=shingle_hash32)
            for shingle in shingles(text, params.ngram):
                m.update(shingle)
            out.append(m.hashvalues)
        return out

    def datasketch_batch() -> list[np.ndarray]:
        out = []
        for text in subset:
            m = MinHash(num_perm=params.num_perm, seed=params.seed, hashfunc=shingle_hash32)
            m.update_batch(list(shingles(text, params.ngram)))
            out.append(m.hashvalues)
        return out

    reference = datasketch_update()
    identical = all(np.array_equal(r, o) for r, o in zip(reference, ours_matrix, strict=False))
    update_s = _median_time(datasketch_update, max(1, repeat // 2))
    batch_s = _median_time(datasketch_batch, max(1, repeat // 2))
    return {
        "docs": len(texts),
        "mb": mb,
        "ours_docs_s": len(texts) / ours_s,
        "ours_mb_s": mb / ours_s,
        "update_docs_s": len(subset) / update_s,
        "update_mb_s": sub_mb / update_s,
        "batch_docs_s": len(subset) / batch_s,
        "batch_mb_s": sub_mb / batch_s,
        "identical": identical,
        "reference_docs": len(subset),
    }


def _documents_table(corpus: PlantedCorpus) -> pa.Table:
    from curate.schema import DOCUMENTS
    from curate.step import conform

    table = corpus.table()
    return pa.Table.from_batches([conform(b, DOCUMENTS) for b in table.to_batches()], schema=DOCUMENTS)


def run_curate(
    corpus: PlantedCorpus, workdir: Path, runs: int, verify: str
) -> tuple[list[float], float, ClusteringQuality, dict]:
    from support.runs import commit_table_as_stage

    from curate.manifest import read_manifest
    from curate.runners.spark import build_session
    from curate.stage import Inputs, RunContext
    from curate.stage_rows import read_stage_table
    from curate.stages.dedup import DedupConfig, run_near_dedup
    from curate.stages.registry import DUPLICATES_DIR, NEAR_DEDUP

    start = time.perf_counter()
    spark = build_session("local[2]", app_name="bench-dedup", driver_memory="4g", shuffle_partitions=8)
    session_s = time.perf_counter() - start
    times = []
    quality = None
    extra: dict = {}
    for run in range(runs):
        ctx = RunContext(str(workdir / f"curate-{run}"), master="local[2]").use_session(spark)
        source = commit_table_as_stage(ctx, "02_url_dedup", _documents_table(corpus), config={"bench": True})
        start = time.perf_counter()
        run_near_dedup(ctx, Inputs(NEAR_DEDUP.name(), stages=(source,)), DedupConfig(verify=verify))
        times.append(time.perf_counter() - start)
        stage_dir = ctx.stage_dir(NEAR_DEDUP.name())
        phases = (read_manifest(stage_dir).extra or {}).get("seconds", {})  # type: ignore[union-attr]
        print(f"  curate run {run + 1}: {times[-1]:.1f} s  ({', '.join(f'{k} {v:.1f}' for k, v in phases.items())})")
        rows = read_stage_table(f"{stage_dir}/{DUPLICATES_DIR}").to_pylist()
        cluster_of: dict[str, str] = {}
        kept_of: dict[str, str] = {}
        for row in rows:
            cluster_of[row["doc_id"]] = cluster_of[row["kept_doc_id"]] = row["cluster_id"]
            kept_of[row["doc_id"]] = row["kept_doc_id"]
        quality = evaluate(corpus, cluster_of, kept_of)
        manifest = read_manifest(stage_dir)
        extra = manifest.extra if manifest else {}
    spark.stop()
    assert quality is not None
    return times, session_s, quality, extra


def run_datatrove(corpus: PlantedCorpus, workdir: Path, workers: int) -> tuple[float, ClusteringQuality, int]:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import MinhashDedupSignature
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
    )
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import JsonlWriter
    from loguru import logger

    # datatrove's own default sink goes; its per-task stats still reach stderr, the results go to stdout.
    logger.remove()
    logger.add(sys.stderr, level="WARNING")

    params = MinHashParams()
    bands, rows = params.bands_rows
    config = MinhashConfig(n_grams=params.ngram, num_buckets=bands, hashes_per_bucket=rows, seed=params.seed)
    base = workdir / "datatrove"
    inputs = base / "input"
    inputs.mkdir(parents=True)
    table = _documents_table(corpus)
    # One input file per task, as datatrove distributes files.
    per_file = -(-table.num_rows // workers)
    for i in range(workers):
        pq.write_table(table.slice(i * per_file, per_file), inputs / f"part-{i:05d}.parquet")

    def reader() -> ParquetReader:
        return ParquetReader(str(inputs), text_key="text", id_key="doc_id")

    stages = [
        LocalPipelineExecutor(
            pipeline=[reader(), MinhashDedupSignature(output_folder=str(base / "signatures"), config=config)],
            tasks=workers,
            workers=workers,
            logging_dir=str(base / "logs" / "signatures"),
        ),
        LocalPipelineExecutor(
            pipeline=[
                MinhashDedupBuckets(
                    input_folder=str(base / "signatures"), output_folder=str(base / "buckets"), config=config
                )
            ],
            tasks=bands,
            workers=workers,
            logging_dir=str(base / "logs" / "buckets"),
        ),
        LocalPipelineExecutor(
            pipeline=[
                MinhashDedupCluster(
                    input_folder=str(base / "buckets"),
                    output_folder=str(base / "remove_ids"),
                    config=config,
                    save_cluster_id=True,
                )
            ],
            tasks=1,
            logging_dir=str(base / "logs" / "clusters"),
        ),
        LocalPipelineExecutor(
            pipeline=[
                reader(),
                MinhashDedupFilter(
                    input_folder=str(base / "remove_ids"),
                    exclusion_writer=JsonlWriter(str(base / "removed")),
                    load_cluster_ids=True,
                ),
                JsonlWriter(str(base / "output")),
            ],
            tasks=workers,
            workers=workers,
            logging_dir=str(base / "logs" / "filter"),
        ),
    ]
    start = time.perf_counter()
    for executor in stages:
        executor.run()
    elapsed = time.perf_counter() - start

    cluster: dict[str, int] = {}
    removed: set[str] = set()
    for folder, is_removed in (("output", False), ("removed", True)):
        for path in sorted((base / folder).glob("*.jsonl.gz")):
            with gzip.open(path, "rt") as handle:
                for line in handle:
                    record = json.loads(line)
                    if record["metadata"].get("minhash_cluster_id", -1) >= 0:
                        cluster[record["id"]] = record["metadata"]["minhash_cluster_id"]
                    if is_removed:
                        removed.add(record["id"])
    kept_in: dict[int, str] = {c: d for d, c in cluster.items() if d not in removed}
    cluster_of = {d: str(c) for d, c in cluster.items()}
    kept_of = {d: kept_in[cluster[d]] for d in removed if cluster.get(d) in kept_in}
    return elapsed, evaluate(corpus, cluster_of, kept_of), len(removed)


def _quality_line(name: str, q: ClusteringQuality, removed: int) -> str:
    return (
        f"  {name:10s} recall(J>=0.85) {q.recall:.3f} ({q.found}/{q.positives})  "
        f"merged pairs {q.merged_pairs}, below J 0.5: {q.merged_below} (pair precision {q.pair_precision:.3f}), "
        f"removed {removed}, removed with J<0.5 to kept: {q.removed_below}, min merged J {q.min_merged_jaccard:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("CURATE_SHARED_DATA", ROOT.parent / "shared" / "data"))
    )
    parser.add_argument("--per-source", type=int, default=600, help="real documents per source (3 sources)")
    parser.add_argument("--sources", type=int, default=1680, help="documents that get planted variants")
    parser.add_argument("--variants", type=int, default=3, help="planted variants per source")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--reference-docs", type=int, default=300, help="documents for the datasketch loop")
    parser.add_argument("--spark-runs", type=int, default=2)
    parser.add_argument("--skip-datatrove", action="store_true")
    parser.add_argument("--verify", default="exact", help="dedup.verify for curate: exact, signature or none")
    args = parser.parse_args()

    start = time.perf_counter()
    real = load_real_documents(args.data, per_source=args.per_source)
    # Interleave sources so the planted families cover web text, math and HTML alike.
    by_kind: dict[str, list] = {}
    for doc in real:
        by_kind.setdefault(doc[0].split("-")[0], []).append(doc)
    mixed = [doc for group in zip(*by_kind.values(), strict=False) for doc in group]
    mixed += [doc for doc in real if doc not in set(mixed)]
    corpus = plant(mixed, n_sources=args.sources, variants_per_source=args.variants)
    texts = corpus.texts
    print(
        f"corpus: {len(real)} real documents ({', '.join(f'{k} {len(v)}' for k, v in by_kind.items())}) + "
        f"{len(texts) - len(real)} planted variants = {len(texts)} docs, "
        f"{sum(len(t.encode()) for t in texts) / 1e6:.1f} MB ({time.perf_counter() - start:.1f} s to build)"
    )

    params = MinHashParams()
    tp = signature_throughput(texts, params, args.repeat, args.reference_docs)
    print("\n1. MinHash signatures (128 permutations, 5-gram words, single thread, text -> signature)")
    print(
        f"  curate vectorised          {tp['ours_docs_s']:8.0f} docs/s {tp['ours_mb_s']:6.2f} MB/s  ({tp['docs']} docs)"
    )
    print(
        f"  datasketch update() loop   {tp['update_docs_s']:8.0f} docs/s {tp['update_mb_s']:6.2f} MB/s  "
        f"({tp['reference_docs']} docs)  -> curate is {tp['ours_mb_s'] / tp['update_mb_s']:.1f}x"
    )
    print(
        f"  datasketch update_batch()  {tp['batch_docs_s']:8.0f} docs/s {tp['batch_mb_s']:6.2f} MB/s  "
        f"-> curate is {tp['ours_mb_s'] / tp['batch_mb_s']:.1f}x"
    )
    print(f"  identical values on the {tp['reference_docs']} reference docs: {tp['identical']}")

    workdir = Path(tempfile.mkdtemp(prefix="bench-dedup-"))
    try:
        times, session_s, quality, extra = run_curate(corpus, workdir, args.spark_runs, args.verify)
        print("\n2. Planted near-duplicates (exact Jaccard of the same 5-gram shingle sets as ground truth)")
        print(
            f"  curate: {extra.get('bands')} bands x {extra.get('rows')} rows, {extra.get('candidate_pairs')} candidate "
            f"pairs, {extra.get('edges')} verified, {extra.get('rounds')} component rounds in {extra.get('passes')} star passes, "
            f"{extra.get('clusters')} clusters"
        )
        removed_total = _removed_count(workdir)
        print(_quality_line("curate", quality, removed_total))
        if not args.skip_datatrove:
            dt_s, dt_quality, dt_removed = run_datatrove(corpus, workdir, workers=2)
            print(_quality_line("datatrove", dt_quality, dt_removed))
        print("\n3. End-to-end near-dedup wall time (same Parquet documents in, written outputs)")
        print(
            f"  curate Spark local[2]: session start {session_s:.1f} s (once), stage runs {', '.join(f'{t:.1f}' for t in times)} s"
        )
        if not args.skip_datatrove:
            best = min(times)
            print(f"  datatrove 4 stages, 2 workers: {dt_s:.1f} s")
            print(
                f"  ratio datatrove / curate: {dt_s / best:.2f}x (best curate run), {dt_s / times[0]:.2f}x (first run), "
                f"{dt_s / (times[0] + session_s):.2f}x (first run + session start)"
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _removed_count(workdir: Path) -> int:
    from curate.stage_rows import read_stage_table
    from curate.stages.registry import DUPLICATES_DIR, NEAR_DEDUP

    runs = sorted(workdir.glob("curate-*"))
    return read_stage_table(f"{runs[-1]}/{NEAR_DEDUP.name()}/{DUPLICATES_DIR}").num_rows


if __name__ == "__main__":
    main()
