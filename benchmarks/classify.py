"""Benchmark the math classifier: training on the real shared data, raw fastText predict vs Spark scoring.

Training: positives are StackMathQA, OpenStax Calculus and the llm-webkit math pages; negatives come from an
ingest-like DOCUMENTS file of DCLM, C4, RedPajama, news articles and the non-math llm-webkit pages. The
paper's parameters (dim 256, lr 0.1, wordNgrams 3, minCount 3, epoch 3) with `--bucket` (default 200k:
the paper's 2M bucket makes a 2 GB model, pass `--bucket 2000000` to measure that).

Throughput, on the same texts (all of the above, `--copies` times), one pass of each side in turn and the
median of `--repeat` rounds, so a busy neighbour on a shared VM slows both sides of a ratio alike:
- raw: this process, `model.predict(list)` on preprocessed lines (fastText alone), and preprocessing +
  predict (what any scorer must do); docs per wall second and per CPU second;
- spark: `MathScoreStep` through `mapInArrow` on local[2], forced with a `noop` write, after a warm-up pass
  (JVM start, model load in each Python worker); docs per wall second for both cores and per core, and
  per CPU second of the Python workers (read from /proc), and what both cores would give on an idle machine
  (every CPU second the job used, workers and JVM, spread over two cores).

Out-of-source ROC-AUC (printed first; `--auc-only` stops there), on a documented split of the shared data:
- train: positives math-text/ (StackMathQA, OpenStax Calculus), negatives web-text/ (DCLM, C4, RedPajama);
- test: the llm-webkit `math_*` and ccmath HTML pages (29 math pages) against the article-extraction-benchmark
  and trafilatura pages (742 non-math pages), all through curate's HTML extraction; no test source is trained on.
Three models on the same balanced training data: curate (`train_classifier`, fit=auto: wordNgrams, epochs
and lr chosen on OpenStax held out of training, threshold read there too), curate with the paper's settings
as given (fit=paper), and plain fastText (paper settings, raw whitespace-split text, no curate preprocessing)
as the baseline. Nothing here is tuned on the test pages: they are only scored.

    python benchmarks/classify.py [--data DIR] [--bucket N] [--dim N] [--copies N] [--repeat N] [--json] [--auc-only]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from _paths import ROOT
from support.classifier_split import out_of_source_split

from curate.classify.model import load_model, math_probabilities, score_texts
from curate.classify.preprocess import preprocess
from curate.classify.seed import SeedDoc, documents_table, read_seed
from curate.classify.train import train_classifier

SPARK_CORES = 2


def corpus(data: Path) -> tuple[list[Path], list[SeedDoc]]:
    groundtruth = data / "html/llm-webkit-bench/data/groundtruth"
    math_pages = sorted(p for p in groundtruth.glob("math_*.jsonl"))
    other_pages = sorted(p for p in groundtruth.glob("*.jsonl") if not p.name.startswith("math_"))
    positives = [
        data / "math-text/stackmathqa/data/stackmathqa100k",
        data / "math-text/openstax-calculus/modules",
        *math_pages,
    ]
    web = data / "web-text"
    negatives = list(
        read_seed([web / "dclm-annotated", web / "olmo-c4-sample", web / "dolma-cc_en_head", *other_pages])
    )
    negatives += read_seed(data / "html/article-extraction-benchmark/ground-truth.json", text_field="articleBody")
    return positives, negatives


def _plain_fasttext_auc(result_manifest: dict[str, Any], work: Path, test: tuple[list[str], list[str]]) -> float:
    """Baseline: fastText with the paper's settings on raw text (whitespace-folded, one line), nothing else."""
    import random

    import numpy as np

    from curate.classify.fit import PAPER_PRESET, train_fasttext
    from curate.classify.metrics import roc_auc
    from curate.classify.model import math_probabilities

    data = result_manifest["baseline_examples"]
    rng = random.Random(0)
    rng.shuffle(data)
    train_file = work / "plain.txt"
    train_file.write_text("".join(f"{label} {' '.join(text.split())}\n" for label, text in data))
    params = PAPER_PRESET.__class__(**{**PAPER_PRESET.__dict__, "bucket": result_manifest["bucket"]})
    model = train_fasttext(train_file, params)
    math_pages, other_pages = test
    scores = math_probabilities(model, [" ".join(t.split()) for t in math_pages + other_pages])
    labels = np.array([True] * len(math_pages) + [False] * len(other_pages))
    return roc_auc(labels, scores)


def bench_out_of_source(data: Path, bucket: int, dim: int) -> dict[str, Any]:
    from curate.classify.evaluate import evaluate_model
    from curate.classify.labelled import read_labelled
    from curate.classify.model import MATH_LABEL, OTHER_LABEL

    positives, negatives, test_math, test_other = out_of_source_split(data)
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-oos-") as tmp:
        work = Path(tmp)
        negatives_file = work / "documents.parquet"
        pq.write_table(documents_table(negatives), negatives_file)
        for fit in ("auto", "paper"):
            started = time.perf_counter()
            result = train_classifier(positives, negatives_file, work / fit, bucket=bucket, dim=dim, seed=0, fit=fit)
            seconds = time.perf_counter() - started
            report = evaluate_model(result.model_path, test_math, test_other)
            figures[f"curate_{fit}"] = {
                "roc_auc": report["roc_auc"],
                "average_precision": report["average_precision"],
                "threshold": report["threshold"],
                "precision_at_threshold": report["precision"],
                "recall_at_threshold": report["recall"],
                "spread": report["spread"],
                "chosen": result.fit["chosen"],
                "held_out_roc_auc": result.out_of_source["roc_auc"],
                "train_seconds": round(seconds, 1),
                "n_math": report["n_positive"],
                "n_other": report["n"] - report["n_positive"],
            }
        # Same balanced classes as curate's trainer: min(#positives, #negatives) of each, first by read order.
        math_texts = [d.text for d in read_seed(positives)]
        other_texts = [d.text for d in negatives]
        per_class = min(len(math_texts), len(other_texts))
        baseline_data = [(MATH_LABEL, t) for t in math_texts[:per_class]] + [
            (OTHER_LABEL, t) for t in other_texts[:per_class]
        ]
        test = ([t.text for t in read_labelled(test_math).texts], [t.text for t in read_labelled(test_other).texts])
        started = time.perf_counter()
        auc = _plain_fasttext_auc({"baseline_examples": baseline_data, "bucket": bucket}, work, test)
        figures["plain_fasttext_paper_settings"] = {
            "roc_auc": auc,
            "train_seconds": round(time.perf_counter() - started, 1),
        }
    return figures


def _spark_cpu_seconds() -> tuple[float, float]:
    """(PySpark Python workers, JVM) utime + stime of this process's descendants, from Linux /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry)
        stats[pid] = fields
        children.setdefault(int(fields[1]), []).append(pid)
    python = jvm = 0.0
    stack = list(children.get(os.getpid(), []))
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        seconds = (int(stats[pid][11]) + int(stats[pid][12])) / ticks
        if b"java" in cmdline:
            jvm += seconds
        elif b"pyspark" in cmdline:
            python += seconds
    return python, jvm


def _timed(work: Callable[[], Any]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def bench_throughput(model_path: Path, documents: Path, texts: list[str], repeat: int) -> dict[str, dict[str, float]]:
    """Raw and Spark passes interleaved, so a busy neighbour slows both sides of a ratio alike."""
    from curate.runners.spark import build_session, map_steps
    from curate.steps.mathscore import MathScoreStep

    model = load_model(model_path)
    lines = [preprocess(t) for t in texts]
    session = build_session(f"local[{SPARK_CORES}]", app_name="bench-classify", shuffle_partitions=SPARK_CORES)
    timings: dict[str, list[tuple[float, float]]] = {"predict": [], "preprocess_predict": [], "spark": []}
    spark_jvm_cpu: list[float] = []
    try:
        schema = pq.read_schema(documents)
        step = MathScoreStep(model_path).ship(session.sparkContext)
        df = session.read.parquet(str(documents)).repartition(SPARK_CORES * 4).cache()
        df.count()
        scored = map_steps(df, [step], schema)
        scored.write.format("noop").mode("overwrite").save()  # warm-up: workers start and load the model
        for _ in range(repeat):
            timings["predict"].append(_timed(lambda: math_probabilities(model, lines)))
            timings["preprocess_predict"].append(_timed(lambda: score_texts(model, texts)))
            python0, jvm0 = _spark_cpu_seconds()
            wall, _ = _timed(lambda: scored.write.format("noop").mode("overwrite").save())
            python1, jvm1 = _spark_cpu_seconds()
            timings["spark"].append((wall, python1 - python0))
            spark_jvm_cpu.append(jvm1 - jvm0)
    finally:
        session.stop()
    n = len(texts)
    figures: dict[str, dict[str, float]] = {}
    for name, runs in timings.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        figures[name] = {
            "docs_per_s": n / wall,
            "docs_per_cpu_s": n / cpu if cpu > 0 else float("nan"),
            "cores_received": cpu / wall,  # below 1 (raw) or 2 (Spark): other jobs took the rest
        }
    spark = figures["spark"]
    spark["docs_per_s_per_core"] = spark["docs_per_s"] / SPARK_CORES
    jvm = statistics.median(spark_jvm_cpu)
    spark["jvm_cpu_s_per_1000_docs"] = 1000 * jvm / n
    # What local[2] would do with both cores to itself: every CPU second it used (workers and JVM) spread
    # over the two cores.
    total_cpu = n / spark["docs_per_cpu_s"] + jvm
    spark["idle_machine_docs_per_s"] = SPARK_CORES * n / total_cpu
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--bucket", type=int, default=200_000)
    parser.add_argument("--copies", type=int, default=3, help="times the texts are repeated for throughput")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dim", type=int, default=256, help="fastText dim for the out-of-source models")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--auc-only", action="store_true", help="only the out-of-source ROC-AUC, no throughput")
    args = parser.parse_args()

    oos = bench_out_of_source(args.data, args.bucket, args.dim)
    print(
        "out-of-source ROC-AUC (train math-text vs web-text; test llm-webkit+ccmath math pages vs "
        "article-benchmark+trafilatura pages):"
    )
    for name, values in oos.items():
        extra = ""
        if "chosen" in values:
            extra = (
                f"  (wordNgrams {values['chosen']['word_ngrams']}, epoch {values['chosen']['epoch']}, lr "
                f"{values['chosen']['lr']}; held-out-source ROC-AUC {values['held_out_roc_auc']:.3f}; threshold "
                f"{values['threshold']:.3f}: precision {values['precision_at_threshold']:.3f} recall "
                f"{values['recall_at_threshold']:.3f}; {values['n_math']} math / {values['n_other']} other)"
            )
        print(f"  {name:32s} {values['roc_auc']:.4f}  train {values['train_seconds']:.0f} s{extra}")
    if args.auc_only:
        if args.json:
            print(json.dumps(oos, indent=2))
        return

    positives, negatives = corpus(args.data)
    with tempfile.TemporaryDirectory(prefix="bench-classify-") as tmp:
        work = Path(tmp)
        negatives_file = work / "documents.parquet"
        pq.write_table(documents_table(negatives), negatives_file)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        result = train_classifier(positives, negatives_file, work / "model", bucket=args.bucket, seed=0)
        train_wall, train_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        manifest = json.loads(result.manifest_path.read_text())

        texts = [d.text for d in read_seed(positives)] + [d.text for d in negatives]
        texts = texts * args.copies
        mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
        table = documents_table(SeedDoc(t, f"https://bench.invalid/{i}", "bench") for i, t in enumerate(texts))
        documents = work / "score.parquet"
        pq.write_table(table, documents, row_group_size=1000)

        figures_tp = bench_throughput(result.model_path, documents, texts, args.repeat)

    metrics = manifest["metrics"]
    figures = {
        "model": {
            "model_id": result.model_id,
            "params": manifest["fasttext"],
            "size_mb": round(result.model_path.stat().st_size / 1e6, 1) if result.model_path.exists() else None,
        },
        "training": {
            "examples": result.counts,
            "seconds_load": manifest["seconds"]["load"],
            "seconds_fasttext": manifest["seconds"]["train"],
            "wall_s": round(train_wall, 2),
            "cpu_s": round(train_cpu, 2),
        },
        "validation": {k: metrics[k] for k in ("n", "precision", "recall", "f1", "roc_auc", "average_precision")},
        "throughput": {
            "docs": len(texts),
            "mb": round(mb, 2),
            **{name: {k: round(v, 1) for k, v in values.items()} for name, values in figures_tp.items()},
        },
    }
    raw_predict, raw_full, spark = figures_tp["predict"], figures_tp["preprocess_predict"], figures_tp["spark"]
    per_core = spark["docs_per_s_per_core"]
    figures["ratios"] = {
        # The target: Spark on local[2] against raw fastText predict in one process, both wall clock.
        "spark_total_vs_raw_predict_wall": round(spark["docs_per_s"] / raw_predict["docs_per_s"], 3),
        "spark_per_core_vs_raw_predict_wall": round(per_core / raw_predict["docs_per_s"], 3),
        "spark_per_core_vs_raw_preprocess_predict_wall": round(per_core / raw_full["docs_per_s"], 3),
        # CPU seconds: what a core does, whatever else runs on the machine.
        "spark_idle_machine_vs_raw_predict_cpu": round(
            spark["idle_machine_docs_per_s"] / raw_predict["docs_per_cpu_s"], 3
        ),
        "spark_worker_cpu_vs_raw_predict_cpu": round(spark["docs_per_cpu_s"] / raw_predict["docs_per_cpu_s"], 3),
        "spark_worker_cpu_vs_raw_preprocess_predict_cpu": round(
            spark["docs_per_cpu_s"] / raw_full["docs_per_cpu_s"], 3
        ),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"model {result.model_id}  {manifest['fasttext']}")
    print(
        f"training: {sum(result.counts[k] for k in ('train_positive', 'train_negative'))} examples, "
        f"fastText {manifest['seconds']['train']:.1f} s, data loading {manifest['seconds']['load']:.1f} s"
    )
    v = figures["validation"]
    print(
        f"held-out ({v['n']} docs): ROC-AUC {v['roc_auc']:.4f}  F1 {v['f1']:.4f}  "
        f"precision {v['precision']:.4f}  recall {v['recall']:.4f}  AP {v['average_precision']:.4f}"
    )
    print(f"throughput on {len(texts)} docs ({mb:.1f} MB):")
    print(
        f"  raw predict (preprocessed lines), 1 process : {raw_predict['docs_per_s']:8.0f} docs/s, "
        f"{raw_predict['docs_per_cpu_s']:8.0f} docs/CPU-s"
    )
    print(
        f"  raw preprocess + predict, 1 process         : {raw_full['docs_per_s']:8.0f} docs/s, "
        f"{raw_full['docs_per_cpu_s']:8.0f} docs/CPU-s"
    )
    print(
        f"  Spark local[2] MathScoreStep                : {spark['docs_per_s']:8.0f} docs/s ({per_core:.0f} per core), "
        f"{spark['docs_per_cpu_s']:8.0f} docs/CPU-s of the Python workers"
    )
    print(
        f"  cores received: raw {raw_full['cores_received']:.2f} of 1, Spark workers {spark['cores_received']:.2f} "
        f"of {SPARK_CORES}; JVM {spark['jvm_cpu_s_per_1000_docs']:.2f} CPU-s per 1000 docs; "
        f"local[2] with idle cores: {spark['idle_machine_docs_per_s']:.0f} docs/s"
    )
    for name, value in figures["ratios"].items():
        print(f"  ratio {name}: {value:.3f}")


if __name__ == "__main__":
    main()
