"""Synthetic run directories for tests of the readers of a run (export, report).

They follow the run layout contract (stage dirs with Parquet written by pyarrow, `_manifest.json` via
`curate.manifest`), so export and report are tested without running ingest, dedup or the classifier.
Texts and URLs are real ones from the shared test data; scores, clusters and hits are made up but
consistent with each other (every count in a manifest matches the rows written).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.classify.tokens import APPROX, TokenCountStep, count_tokens
from curate.manifest import Manifest, write_manifest
from curate.schema import CONTAMINATION, DOCUMENTS, DOMAIN_STATS, DUPLICATES, N_TOKENS, PREFIX_STATS, SCORE_FIELDS
from curate.stage import Inputs, RunContext, Stage

GENERATED = pa.schema([*DOCUMENTS, N_TOKENS])
# The stage names `curate run` uses (curate.pipeline).
NEAR_DEDUP = "03_near_dedup"
SCORE = "02_math_score"
SELECT = "03_math_select"
DOMAINS = "04_domains"
DECONTAMINATE = "90_decontaminate"
HOSTILE_MARKUP = "<script>alert(1)</script>"
HOSTILE_URL = f'https://evil.example/a?q="><img src=x onerror=alert(2)>&x={HOSTILE_MARKUP}'
HOSTILE_DOMAIN = f"{HOSTILE_MARKUP}.example"
WARC_PATH = "s3://commoncrawl/crawl-data/CC-MAIN-2024-22/segments/1715971057216.39/warc/CC-MAIN-synthetic-00000.warc.gz"


def real_texts(shared_data: Path) -> list[str]:
    """Real web documents (DCLM's annotated Common Crawl pages, then C4), in file order."""
    texts = []
    for name in ("majority_data.jsonl", "agreement_data.jsonl"):
        with open(shared_data / "web-text" / "dclm-annotated" / name, encoding="utf-8") as handle:
            texts += [json.loads(line)["text"] for line in handle if line.strip()]
    for path in sorted((shared_data / "web-text" / "olmo-c4-sample").glob("c4-sample.*.json.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            texts += [json.loads(line)["text"] for line in handle if line.strip()]
    return [t for t in texts if t.strip()]


def real_urls(shared_data: Path) -> list[str]:
    with open(shared_data / "html" / "trafilatura-tests" / "evaldata.json", encoding="utf-8") as handle:
        return sorted(url for url in json.load(handle) if url.startswith(("http://", "https://")))


def doc_id_of(key: str) -> str:
    return hashlib.sha1(key.encode()).hexdigest()[:20]


def _unit(key: str) -> float:
    """A deterministic number in [0, 1) from a key (stands in for a classifier score)."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 2**32


def _domain(host: str) -> str:
    return ".".join(host.split(".")[-2:])


def write_stage_table(stage_dir: Path, table: pa.Table, sub: str | None = None, rows_per_file: int = 0) -> None:
    directory = stage_dir / sub if sub else stage_dir
    directory.mkdir(parents=True, exist_ok=True)
    step = rows_per_file or max(table.num_rows, 1)
    for index, start in enumerate(range(0, max(table.num_rows, 1), step)):
        pq.write_table(table.slice(start, step), directory / f"part-{index:05d}.parquet", compression="zstd")


def write_stage_manifest(
    stage_dir: Path,
    name: str,
    *,
    rows_in: int,
    rows_out: int,
    drops: dict[str, int] | None = None,
    extra: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
) -> Manifest:
    manifest = Manifest(
        stage=name,
        fingerprint=doc_id_of(f"fingerprint:{name}:{rows_in}:{rows_out}")[:16],
        config_hash=doc_id_of(f"config:{name}")[:16],
        config={"synthetic": True, **(config or {})},
        steps=[f"synthetic_{name.rsplit('_', 1)[-1]}_v1"],
        inputs=[],
        rows_in=rows_in,
        rows_out=rows_out,
        drops=dict(sorted((drops or {}).items())),
        runner="synthetic",
        wall_seconds=0.5,
        created="2026-11-21T00:00:00+00:00",
        extra=extra or {},
    )
    stage_dir.mkdir(parents=True, exist_ok=True)
    write_manifest(stage_dir, manifest)
    return manifest


@dataclass
class SyntheticRun:
    run_dir: Path
    final_doc_ids: list[str]
    stages: list[str]
    selected: dict[int, list[str]] = field(default_factory=dict)
    clusters: dict[str, str] = field(default_factory=dict)  # kept doc_id -> cluster id
    contaminated: list[str] = field(default_factory=list)


def _documents(texts: list[str], urls: list[str], hostile: bool) -> pa.Table:
    rows = []
    start = datetime(2024, 5, 20, tzinfo=UTC)
    offset = 0
    for i, text in enumerate(texts):
        url = urls[i % len(urls)]
        host = urlsplit(url).hostname or ""
        domain = _domain(host)
        if hostile and i % 40 == 3:
            url, host, domain = HOSTILE_URL, "evil.example", HOSTILE_DOMAIN
            text = f"{HOSTILE_MARKUP} {text}"
        length = 400 + len(text) // 3
        rows.append(
            {
                "doc_id": doc_id_of(f"doc:{i}"),
                "url": url,
                "host": host,
                "registered_domain": domain,
                "warc_path": WARC_PATH,
                "warc_record_offset": offset,
                "warc_record_length": length,
                "warc_date": start + timedelta(minutes=i),
                "content_type": "text/html",
                "charset": "utf-8",
                "language": "en",
                "language_score": 0.9,
                "text": text,
                "n_chars": len(text),
                "has_math_markup": "$" in text or "\\(" in text,
            }
        )
        offset += length
    return pa.Table.from_pylist(rows, schema=DOCUMENTS)


def build_synthetic_run(
    run_dir: Path, shared_data: Path, *, n_docs: int = 240, iterations: int = 2, hostile: bool = False
) -> SyntheticRun:
    """A finished run: extract, url dedup, near dedup, `iterations` x (score, select, domains), decontaminate."""
    texts = real_texts(shared_data)[:n_docs]
    docs = _documents(texts, real_urls(shared_data), hostile)
    n = docs.num_rows
    stages: list[str] = []

    def stage(name: str, table: pa.Table, **manifest: Any) -> Path:
        path = run_dir.joinpath(*name.split("/"))
        write_stage_table(path, table, rows_per_file=max(1, table.num_rows // 2))
        write_stage_manifest(path, name, **manifest)
        stages.append(name)
        return path

    stage("01_extract", docs, rows_in=n + 37, rows_out=n, drops={"non_html": 30, "http_status": 7})
    stage("02_url_dedup", docs, rows_in=n, rows_out=n, drops={})

    # Near-dup clusters of sizes 2..5 over the first documents; the smallest doc_id is kept.
    ids = docs.column("doc_id").to_pylist()
    removed: list[dict[str, Any]] = []
    clusters: dict[str, str] = {}
    position = 0
    for size in (2, 2, 2, 3, 3, 4, 5):
        members = sorted(ids[position : position + size])
        position += size
        cluster_id = members[0]
        clusters[members[0]] = cluster_id
        removed += [
            {"doc_id": m, "cluster_id": cluster_id, "kept_doc_id": members[0], "jaccard": 0.9} for m in members[1:]
        ]
    removed_ids = {r["doc_id"] for r in removed}
    kept = docs.filter(pa.array([i not in removed_ids for i in ids]))
    dedup_dir = stage(NEAR_DEDUP, kept, rows_in=n, rows_out=kept.num_rows, drops={"near_duplicate": len(removed)})
    write_stage_table(dedup_dir, pa.Table.from_pylist(removed, schema=DUPLICATES), sub="_duplicates")

    selected: dict[int, list[str]] = {}
    current = kept
    for iteration in range(1, iterations + 1):
        prefix = f"iter-{iteration:02d}"
        model = f"fasttext_math_v1-iter{iteration:02d}"
        # Hostile pages score high so they reach the final corpus and every table of a report.
        scores = [
            0.99 if url == HOSTILE_URL else _unit(f"{iteration}:{d}")
            for d, url in zip(kept.column("doc_id").to_pylist(), kept.column("url").to_pylist(), strict=True)
        ]
        scored = (
            kept.append_column(SCORE_FIELDS[0], pa.array(scores, pa.float32()))
            .append_column(SCORE_FIELDS[1], pa.array([model] * kept.num_rows, pa.string()))
            .append_column(N_TOKENS, pa.array(count_tokens(kept.column("text").to_pylist(), APPROX), pa.int64()))
        )
        stage(
            f"{prefix}/{SCORE}",
            scored,
            rows_in=kept.num_rows,
            rows_out=kept.num_rows,
            config={"steps": {TokenCountStep.name: {"tokenizer": APPROX, "text_column": "text"}}},
        )
        cutoff = 0.6 - 0.1 * iteration
        mask = pa.array([s >= cutoff for s in scores])
        chosen = scored.filter(mask)
        selected[iteration] = chosen.column("doc_id").to_pylist()
        # Iteration 1 selects by threshold, later ones by a token budget (as `curate run` records them).
        extra: dict[str, Any] = {"min_score": cutoff, "token_budget": None, "boundary": None}
        if iteration > 1:
            ranked = sorted(
                zip(
                    chosen.column("math_score").to_pylist(),
                    chosen.column("doc_id").to_pylist(),
                    chosen.column(N_TOKENS.name).to_pylist(),
                    strict=True,
                ),
                key=lambda r: (-r[0], r[1]),
            )
            budget = sum(r[2] for r in ranked)
            extra = {
                "min_score": None,
                "token_budget": budget,
                "boundary": {
                    "math_score": ranked[-1][0],
                    "doc_id": ranked[-1][1],
                    "cum_tokens": budget,
                    "documents": len(ranked),
                },
            }
        stage(
            f"{prefix}/{SELECT}",
            chosen,
            rows_in=scored.num_rows,
            rows_out=chosen.num_rows,
            drops={"below_threshold": scored.num_rows - chosen.num_rows},
            extra=extra,
            config={"select": {"tokenizer": "deepseek_v4_bpe"}},
        )
        domain_table = _domain_stats(scored, mask)
        domains_dir = stage(
            f"{prefix}/{DOMAINS}",
            domain_table,
            rows_in=domain_table.num_rows,
            rows_out=domain_table.num_rows,
            config={"key": "registered_domain", "flag_threshold": 0.1, "prefix_depth": 2, "min_pages": 1},
            extra={
                "pages": scored.num_rows,
                "flagged_domains": sum(domain_table.column("flagged").to_pylist()),
                "key": "registered_domain",
            },
        )
        write_stage_table(domains_dir, _prefix_stats(scored, mask), sub="_prefixes")
        current = chosen

    # Decontamination: every 9th selected document matches a benchmark question.
    final_ids = current.column("doc_id").to_pylist()
    questions = _benchmark_questions(shared_data)
    hits = []
    for k, doc_id in enumerate(final_ids[::9]):
        benchmark, item_id, question = questions[k % len(questions)]
        url = current.column("url")[final_ids.index(doc_id)].as_py()
        words = question.split()[:10]
        if hostile and k == 0:
            words = [HOSTILE_MARKUP, *words[:9]]
        hits.append(
            {
                "doc_id": doc_id,
                "url": url,
                "benchmark": benchmark,
                "item_id": item_id,
                "field": "question",
                "ngram": " ".join(words),
                "offset": 17 * k,
            }
        )
    hit_ids = {h["doc_id"] for h in hits}
    clean = current.filter(pa.array([d not in hit_ids for d in final_ids]))
    per_benchmark: dict[str, dict[str, int]] = {}
    for hit in hits:
        entry = per_benchmark.setdefault(hit["benchmark"], {"documents": 0, "hits": 0, "items": 0})
        entry["documents"] += 1
        entry["hits"] += 1
        entry["items"] += 1
    decontam_dir = stage(
        DECONTAMINATE,
        clean,
        rows_in=current.num_rows,
        rows_out=clean.num_rows,
        drops={"benchmark_contamination": len(hit_ids)},
        extra={"contamination": {"mode": "drop", "documents": len(hit_ids), "per_benchmark": per_benchmark}},
    )
    write_stage_table(decontam_dir, pa.Table.from_pylist(hits, schema=CONTAMINATION), sub="_contamination")

    (run_dir / "run.json").write_text(
        json.dumps(
            {"stages": stages, "final_stage": DECONTAMINATE, "iterations": iterations, "config": {"synthetic": True}},
            indent=2,
        )
    )
    return SyntheticRun(
        run_dir, sorted(clean.column("doc_id").to_pylist()), stages, selected, clusters, sorted(hit_ids)
    )


def _domain_stats(scored: pa.Table, mask: pa.Array) -> pa.Table:
    seen: dict[str, list[int]] = {}
    for domain, chosen in zip(scored.column("registered_domain").to_pylist(), mask.to_pylist(), strict=True):
        entry = seen.setdefault(domain, [0, 0])
        entry[0] += 1
        entry[1] += int(chosen)
    rows = [
        {"domain": d, "pages_seen": s, "pages_collected": c, "collected_fraction": c / s, "flagged": c / s > 0.1}
        for d, (s, c) in sorted(seen.items())
    ]
    return pa.Table.from_pylist(rows, schema=DOMAIN_STATS)


def _prefix_stats(scored: pa.Table, mask: pa.Array) -> pa.Table:
    groups: dict[tuple[str, str], list[Any]] = {}
    columns = [scored.column(c).to_pylist() for c in ("registered_domain", "url", "text")]
    for domain, url, text, chosen in zip(*columns, mask.to_pylist(), strict=True):
        path = urlsplit(url).path.strip("/").split("/")[0]
        entry = groups.setdefault((domain, f"{urlsplit(url).hostname}/{path}"), [0, 0, [], []])
        entry[0] += 1
        entry[1] += int(chosen)
        if len(entry[2]) < 3:
            entry[2].append(url)
            entry[3].append(text[:120])
    rows = [
        {
            "domain": d,
            "prefix": p,
            "pages_seen": s,
            "pages_collected": c,
            "collected_fraction": c / s,
            "sample_urls": u,
            "sample_snippets": t,
        }
        for (d, p), (s, c, u, t) in sorted(groups.items())
    ]
    return pa.Table.from_pylist(rows, schema=PREFIX_STATS)


def _benchmark_questions(shared_data: Path) -> list[tuple[str, str, str]]:
    found = []
    for benchmark, path, key in (
        ("gsm8k", shared_data / "benchmarks" / "gsm8k" / "test.jsonl", "question"),
        ("math", shared_data / "benchmarks" / "math" / "test.jsonl", "problem"),
    ):
        with open(path, encoding="utf-8") as handle:
            for i, line in zip(range(3), handle, strict=False):
                found.append((benchmark, f"{benchmark}-test-{i}", json.loads(line)[key]))
    return found


# --- a large generated stage, for shard-size tests ----------------------------------------------------------


def _vocabulary(shared_data: Path) -> list[str]:
    words: set[str] = set()
    for text in real_texts(shared_data):
        words.update(re.findall(r"\S+", text))
    return sorted(words)


def _word_pool(vocabulary: list[str], pool_bytes: int, rng: np.random.Generator) -> tuple[bytes, np.ndarray]:
    """Text of words drawn uniformly from a real vocabulary. Uniform draws over ~40k words compress like
    web text does under zstd (~2-3x); sampling whole documents would repeat and compress far better."""
    encoded = [(w + " ").encode() for w in vocabulary]
    lengths = np.array([len(w) for w in encoded], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    mean = float(lengths.mean())
    picks = rng.integers(0, len(vocabulary), int(pool_bytes / mean) + 1)
    sizes = lengths[picks]
    out_starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    source = np.repeat(starts[picks] - out_starts, sizes) + np.arange(int(sizes.sum()))
    return blob[source].tobytes(), out_starts  # the pool's UTF-8 and where its words start


def generated_documents(
    shared_data: Path, raw_bytes: int, *, seed: int = 0, mean_doc_chars: int = 6000, batch_rows: int = 5000
) -> Iterator[pa.Table]:
    """DOCUMENTS (+ n_tokens) batches totalling about `raw_bytes` of text: windows of a pool of real words, real URLs.

    Windows of a 32 MB pool overlap rarely inside one Parquet page (1 MB), so the text compresses like
    fresh text while costing one pool to build.
    """
    rng = np.random.default_rng(seed)
    pool, word_starts = _word_pool(_vocabulary(shared_data), 32 * 2**20, rng)
    urls = real_urls(shared_data)
    hosts_of = [urlsplit(u).hostname or "" for u in urls]
    produced = 0
    first = 0
    start = np.datetime64("2024-05-20T00:00:00", "us")
    while produced < raw_bytes:
        # Windows start and end on word starts, so each is valid UTF-8 and the Arrow array is built from
        # the bytes directly (no Python strings).
        wanted = rng.integers(mean_doc_chars // 4, mean_doc_chars * 7 // 4, batch_rows)
        usable = int(np.searchsorted(word_starts, len(pool) - 2 * mean_doc_chars))
        begins = word_starts[rng.integers(0, usable, batch_rows)]
        ends = word_starts[np.searchsorted(word_starts, begins + wanted)]
        data = b"".join(pool[b:e] for b, e in zip(begins.tolist(), ends.tolist(), strict=True))
        offsets = np.concatenate([[0], np.cumsum(ends - begins)]).astype(np.int32)
        texts = pa.StringArray.from_buffers(batch_rows, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data))
        produced += len(data)
        index = np.arange(first, first + batch_rows)
        page_urls = [f"{urls[i % len(urls)]}?page={i}" for i in index.tolist()]
        hosts = [hosts_of[i % len(urls)] for i in index.tolist()]
        columns = {
            "doc_id": [doc_id_of(f"generated:{seed}:{i}") for i in index.tolist()],
            "url": page_urls,
            "host": hosts,
            "registered_domain": [_domain(h) for h in hosts],
            "warc_path": [WARC_PATH] * batch_rows,
            "warc_record_offset": index * 9000,
            "warc_record_length": np.full(batch_rows, 9000),
            "warc_date": start + index.astype("timedelta64[s]"),
            "content_type": ["text/html"] * batch_rows,
            "charset": ["utf-8"] * batch_rows,
            "language": ["en"] * batch_rows,
            "language_score": np.full(batch_rows, 0.9, dtype=np.float32),
            "text": texts,
            "n_chars": pc.utf8_length(texts).cast(pa.int64()),
            "has_math_markup": np.zeros(batch_rows, dtype=bool),
            # Stands in for the classifier's count (bytes / 4): counting 900 MB for a test would dominate it.
            "n_tokens": pa.array(np.diff(offsets) // 4, pa.int64()),
        }
        first += batch_rows
        yield pa.table(
            {
                f.name: columns[f.name] if isinstance(columns[f.name], pa.Array) else pa.array(columns[f.name], f.type)
                for f in GENERATED
            },
            schema=GENERATED,
        )


def write_generated_stage(stage_dir: Path, shared_data: Path, raw_bytes: int, *, seed: int = 0) -> int:
    """Write a generated documents stage (uncompressed: quick to write and read back); returns its rows."""
    stage_dir.mkdir(parents=True, exist_ok=True)
    rows = 0
    for index, table in enumerate(generated_documents(shared_data, raw_bytes, seed=seed)):
        pq.write_table(table, stage_dir / f"part-{index:05d}.parquet", compression="none")
        rows += table.num_rows
    write_stage_manifest(stage_dir, stage_dir.name, rows_in=rows, rows_out=rows)
    return rows


def commit_table_as_stage(ctx: RunContext, name: str, table: pa.Table, *, config: dict[str, Any] | None = None) -> str:
    """Commit `table` as the finished stage `name` of `ctx`'s run, through the runner's own Stage API, as an
    earlier stage would have left it; returns the stage directory."""
    with Stage(ctx, Inputs(name), config=config or {"fixture": name}, steps=[]) as stage:
        if stage.pending:
            Path(stage.tmp_path).mkdir(parents=True)
            pq.write_table(table, f"{stage.tmp_path}/part-00000.parquet")
            stage.finish(rows_in=table.num_rows, rows_out=table.num_rows, drops={})
    return stage.path
