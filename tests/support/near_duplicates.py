"""Planted near-duplicates of real documents, and how well a clustering recovers them.

Real text comes from the shared data (DCLM Common Crawl documents, StackMathQA Q&A, OpenStax-free HTML
pages extracted with resiliparse). Each chosen source gets variants made by word edits at a controlled
rate (substitute, delete or insert a word, each position independently), and some by adding a
boilerplate block taken from another document. Ground truth is the exact Jaccard similarity of shingle
sets (the same shingles MinHash sees), computed for the pairs that matter: all pairs inside a source's
family (the positives), and every pair a clustering put together (to find false merges).
"""

from __future__ import annotations

import gzip
import json
import random
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import pyarrow as pa

from curate.steps.minhash import shingles

# Word-edit rates of the planted variants. With 5-gram shingles an edit touches up to 5 shingles, so a
# rate e leaves Jaccard near (1 - 5e) / (1 + 5e): 0.005 -> 0.95, 0.015 -> 0.86, 0.03 -> 0.74, 0.08 -> 0.43.
DEFAULT_RATES = (0.002, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.08)


@dataclass
class PlantedCorpus:
    """Documents (doc_id, url, text) and, for planted ones, the source they were derived from."""

    doc_ids: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    family: dict[str, str] = field(default_factory=dict)  # doc_id -> source doc_id (sources map to themselves)
    edit_rate: dict[str, float] = field(default_factory=dict)

    def add(self, doc_id: str, url: str, text: str, source: str, rate: float = 0.0) -> None:
        self.doc_ids.append(doc_id)
        self.urls.append(url)
        self.texts.append(text)
        self.family[doc_id] = source
        self.edit_rate[doc_id] = rate

    def table(self) -> pa.Table:
        return pa.table(
            {
                "doc_id": pa.array(self.doc_ids, pa.string()),
                "url": pa.array(self.urls, pa.string()),
                "text": pa.array(self.texts, pa.string()),
                "n_chars": pa.array([len(t) for t in self.texts], pa.int64()),
            }
        )

    def subset(self, keep: Iterable[str]) -> PlantedCorpus:
        wanted = set(keep)
        out = PlantedCorpus()
        for doc_id, url, text in zip(self.doc_ids, self.urls, self.texts, strict=True):
            if doc_id in wanted:
                out.add(doc_id, url, text, self.family[doc_id], self.edit_rate[doc_id])
        return out


def _dclm(data: Path) -> Iterator[tuple[str, str, str]]:
    for name in ("majority_data.jsonl", "agreement_data.jsonl"):
        path = data / "web-text" / "dclm-annotated" / name
        for i, line in enumerate(path.read_text().splitlines()):
            yield f"dclm-{name.split('_')[0]}-{i:04d}", f"dclm://{name}/{i}", json.loads(line)["text"]


def _stackmathqa(data: Path) -> Iterator[tuple[str, str, str]]:
    for path in sorted((data / "math-text" / "stackmathqa" / "data" / "stackmathqa100k").glob("*.jsonl")):
        for i, line in enumerate(path.read_text().splitlines()):
            record = json.loads(line)
            yield f"smqa-{path.stem}-{i:03d}", record["meta"]["url"], f"{record['Q']}\n\n{record['A']}"


def _html_pages(data: Path) -> Iterator[tuple[str, str, str]]:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    pages = sorted((data / "html" / "trafilatura-tests" / "eval").glob("*.html"))
    pages += sorted((data / "html" / "article-extraction-benchmark" / "html").glob("*.html.gz"))
    for i, path in enumerate(pages):
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        text = extract_plain_text(HTMLTree.parse(raw.decode("utf-8", errors="replace")), main_content=True)
        yield f"html-{i:04d}", f"file://{path.name}", text


def load_real_documents(data: Path, per_source: int, min_words: int = 50) -> list[tuple[str, str, str]]:
    """Up to `per_source` (doc_id, url, text) from each of web text, math Q&A and extracted HTML."""
    out: list[tuple[str, str, str]] = []
    for source in (_dclm, _stackmathqa, _html_pages):
        taken = 0
        seen: set[str] = set()
        for doc_id, url, text in source(data):
            if taken >= per_source:
                break
            # Exact repeats exist in the real data; a planted family must start from distinct texts.
            if len(text.split()) < min_words or text in seen:
                continue
            seen.add(text)
            out.append((doc_id, url, text))
            taken += 1
    return out


def edit_words(text: str, rate: float, rng: random.Random, vocabulary: list[str]) -> str:
    """Each word position is, with probability `rate`, substituted, deleted or followed by an insertion."""
    words = text.split()
    out: list[str] = []
    for word in words:
        if rng.random() >= rate:
            out.append(word)
            continue
        kind = rng.randrange(3)
        if kind == 0:
            out.append(rng.choice(vocabulary))
        elif kind == 2:
            out.extend((word, rng.choice(vocabulary)))
    return " ".join(out)


def plant(
    documents: list[tuple[str, str, str]],
    *,
    n_sources: int,
    rates: tuple[float, ...] = DEFAULT_RATES,
    variants_per_source: int = 3,
    seed: int = 0,
) -> PlantedCorpus:
    """All `documents`, plus variants of the first `n_sources` ones (edit rates cycle through `rates`)."""
    corpus = PlantedCorpus()
    vocabulary = sorted({w for _, _, text in documents[:200] for w in text.split()[:300]})
    for doc_id, url, text in documents:
        corpus.add(doc_id, url, text, doc_id)
    k = 0
    for index, (doc_id, url, text) in enumerate(documents[:n_sources]):
        # Seeds derive from (seed, doc_id), never from a shared RNG stream: adding a source changes nothing else.
        rng = random.Random(f"{seed}:{doc_id}")
        for v in range(variants_per_source):
            rate = rates[k % len(rates)]
            k += 1
            variant = edit_words(text, rate, rng, vocabulary)
            if v == variants_per_source - 1 and index % 2 == 0:
                # A shared boilerplate block (a short header from another page) on top of the edits.
                other = documents[(index + 7) % len(documents)][2].split()
                variant = " ".join(other[: max(5, len(text.split()) // 40)]) + "\n" + variant
            corpus.add(f"{doc_id}~v{v}", f"{url}#v{v}", variant, doc_id, rate)
    return corpus


def jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


@dataclass
class ClusteringQuality:
    positives: int  # same-family pairs with exact Jaccard >= the positive threshold
    found: int  # of those, pairs put in the same cluster
    merged_pairs: int  # all pairs sharing a cluster
    merged_below: int  # merged pairs with exact Jaccard below the negative threshold
    removed_below: int  # removed documents whose Jaccard with their kept document is below it
    min_merged_jaccard: float
    by_band: dict[str, tuple[int, int]]  # Jaccard band -> (pairs, found)

    @property
    def recall(self) -> float:
        return self.found / self.positives if self.positives else 1.0

    @property
    def pair_precision(self) -> float:
        return 1 - self.merged_below / self.merged_pairs if self.merged_pairs else 1.0


def evaluate(
    corpus: PlantedCorpus,
    cluster_of: dict[str, str],
    kept_of: dict[str, str],
    *,
    ngram: int = 5,
    positive: float = 0.85,
    negative: float = 0.5,
) -> ClusteringQuality:
    """Score a clustering (`cluster_of`: doc_id -> cluster for clustered docs; `kept_of`: removed -> kept)."""
    text_of = dict(zip(corpus.doc_ids, corpus.texts, strict=True))
    cache: dict[str, set[str]] = {}

    def sh(doc_id: str) -> set[str]:
        if doc_id not in cache:
            cache[doc_id] = shingles(text_of[doc_id], ngram)
        return cache[doc_id]

    def together(a: str, b: str) -> bool:
        return a in cluster_of and cluster_of.get(a) == cluster_of.get(b)

    families: dict[str, list[str]] = defaultdict(list)
    for doc_id in corpus.doc_ids:
        families[corpus.family[doc_id]].append(doc_id)
    positives = found = 0
    bands: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for members in families.values():
        for a, b in combinations(members, 2):
            j = jaccard(sh(a), sh(b))
            band = f"{min(int(j * 10), 9) / 10:.1f}"
            bands[band][0] += 1
            bands[band][1] += together(a, b)
            if j >= positive:
                positives += 1
                found += together(a, b)

    clusters: dict[str, list[str]] = defaultdict(list)
    for doc_id, cluster in cluster_of.items():
        clusters[cluster].append(doc_id)
    merged = merged_below = 0
    min_merged = 1.0
    for members in clusters.values():
        for a, b in combinations(sorted(members), 2):
            j = jaccard(sh(a), sh(b))
            merged += 1
            merged_below += j < negative
            min_merged = min(min_merged, j)
    removed_below = sum(jaccard(sh(d), sh(k)) < negative for d, k in kept_of.items() if d != k)
    return ClusteringQuality(
        positives=positives,
        found=found,
        merged_pairs=merged,
        merged_below=merged_below,
        removed_below=removed_below,
        min_merged_jaccard=min_merged,
        by_band={k: (v[0], v[1]) for k, v in sorted(bands.items())},
    )
