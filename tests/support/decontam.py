"""Shared inputs of the decontamination tests (unit and Spark).

The full shared-benchmark index and the clean pages take seconds to build, so each is built once per
test session and also kept under the system temp directory, keyed by everything that could change it
(the decontam sources, the benchmark files, the registry): a later session on the same checkout only
loads them. The stage helpers plant benchmark items into real pages and check a finished stage.
"""

from __future__ import annotations

import functools
import json
import random
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import xxhash

from curate.decontam import index as index_module
from curate.decontam.index import IndexConfig, NGramIndex
from curate.decontam.loaders import REGISTRY_PATH, iter_texts, load_texts, shared_benchmarks
from curate.schema import CONTAMINATION, DOCUMENTS, DROP_DETAIL, DROP_REASON
from curate.stage_rows import read_rejected_table, read_stage_table
from curate.stages.registry import CONTAMINATION_DIR
from curate.step import conform
from support.reference_pages import Page, clean_pages, web_text_pages

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"


def _cache_key(*paths: Path) -> str:
    h = xxhash.xxh3_64()
    for path in sorted(paths):
        stat = path.stat()
        h.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return h.hexdigest()


def _cache_dir() -> Path:
    directory = Path(tempfile.gettempdir()) / "curate-test-decontam"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _decontam_sources() -> list[Path]:
    return sorted(Path(index_module.__file__).parent.glob("*.py"))


@functools.cache
def full_index(data_root: Path = SHARED_DATA) -> NGramIndex:
    specs = shared_benchmarks(data_root)
    key = _cache_key(REGISTRY_PATH, *_decontam_sources(), *(Path(s.path) for s in specs))
    path = _cache_dir() / f"shared-index-{key}.npz"
    if path.exists():
        return NGramIndex.load(path)
    index = NGramIndex.build(load_texts(specs), IndexConfig())
    tmp = path.with_suffix(".tmp")
    index.save(tmp)
    tmp.replace(path)
    return index


@functools.cache
def reference_pages(data_root: Path = SHARED_DATA) -> list[Page]:
    key = _cache_key(Path(__file__).with_name("reference_pages.py"))
    path = _cache_dir() / f"clean-pages-{key}.jsonl"
    if path.exists():
        return [Page(**json.loads(line)) for line in path.read_text().splitlines()]
    pages = clean_pages(data_root)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps({"source": p.source, "text": p.text}) + "\n" for p in pages))
    tmp.replace(path)
    return pages


# --- stage tests (local runner in tests/unit, Spark in tests/spark) ------------------------------------

BENCHMARKS = ["gsm8k_test", "math500", "mgsm_zh"]


def planted_documents(shared_data: Path, clean: int = 40) -> tuple[pa.Table, dict[str, tuple[str, str]]]:
    """Real web pages, six of them with a benchmark item pasted in; returns the table and the plants."""
    rng = random.Random(5)
    pages = [p.text for p in web_text_pages(shared_data)][:clean]
    items = []
    for spec in shared_benchmarks(shared_data, BENCHMARKS):
        texts = list(iter_texts(spec))
        items += rng.sample(texts, 2)
    plants: dict[str, tuple[str, str]] = {}
    texts = list(pages)
    for i, item in enumerate(items):
        doc_id = f"doc-{i:03d}"
        texts[i] = texts[i] + "\n\n" + item.text + "\n"
        plants[doc_id] = (item.benchmark, item.item_id)
    rows = {
        "doc_id": [f"doc-{i:03d}" for i in range(len(texts))],
        "url": [f"https://example.org/page/{i}" for i in range(len(texts))],
        "text": texts,
        "n_chars": [len(t) for t in texts],
    }
    table = pa.table(rows)
    return pa.Table.from_batches([conform(b, DOCUMENTS) for b in table.to_batches()], schema=DOCUMENTS), plants


def check_stage(stage_dir: str, table: pa.Table, plants: dict[str, tuple[str, str]], mode: str) -> None:
    """What every run of the stage must satisfy, whichever runner wrote it."""
    manifest = json.loads(Path(stage_dir, "_manifest.json").read_text())
    assert manifest["balanced"]
    hits = ds.dataset(Path(stage_dir, CONTAMINATION_DIR), format="parquet").to_table()
    # Spark does not keep `not null` flags in Parquet: compare names and types.
    assert [(f.name, f.type) for f in hits.schema] == [(f.name, f.type) for f in CONTAMINATION]
    texts = dict(zip(table["doc_id"].to_pylist(), table["text"].to_pylist(), strict=True))
    by_doc: dict[str, set[tuple[str, str]]] = {}
    for row in hits.to_pylist():
        by_doc.setdefault(row["doc_id"], set()).add((row["benchmark"], row["item_id"]))
        original = texts[row["doc_id"]]
        assert original[row["offset"] :].startswith(row["ngram"])
        assert row["length"] >= len(row["ngram"]) and row["matched_tokens"] >= 3
        assert row["url"] == f"https://example.org/page/{int(row['doc_id'][4:])}"
    assert set(by_doc) == set(plants)
    for doc_id, planted in plants.items():
        assert planted in by_doc[doc_id]
    counts = manifest["extra"]["contamination"]
    assert counts["documents"] == len(plants)
    assert sum(b["hits"] for b in counts["per_benchmark"].values()) == hits.num_rows
    assert set(counts["per_benchmark"]) >= {b for b, _ in plants.values()}
    assert manifest["extra"]["index"]["benchmarks"]["mgsm_zh"]["items"] == 250
    kept = read_stage_table(stage_dir)
    assert DROP_REASON not in kept.schema.names and "contamination_hits" not in kept.schema.names
    if mode == "drop":
        rejected = read_rejected_table(stage_dir).to_pylist()
        assert {r["doc_id"] for r in rejected} == set(plants)
        assert all(r[DROP_REASON] == "benchmark_contamination" for r in rejected)
        assert all(r[DROP_DETAIL].split(":")[0] in BENCHMARKS for r in rejected)
        assert kept.num_rows == table.num_rows - len(plants)
    else:
        assert kept.num_rows == table.num_rows
        cut = dict(zip(kept["doc_id"].to_pylist(), kept["text"].to_pylist(), strict=True))
        for doc_id in plants:
            assert len(cut[doc_id]) < len(texts[doc_id])
