"""What the review shows, read from the domains stage's output: the review queue, one screen per flagged domain.

A domains stage directory holds DOMAIN_STATS at its top and side tables under it (`_prefixes/`, `_samples/`,
`_uncollected/`); datasets are told apart by their columns, so an older layout (or a hand-made one) loads too.
Every key is turned into a pattern with `domain_key`, the function the stage itself uses, so the statistics, the
review and the matcher agree on what `archive.org` is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.annotate.patterns import PatternError, domain_key, normalize_pattern
from curate.errors import ConfigError, InputError
from curate.schema import DOMAIN_SAMPLES, DOMAIN_STATS, PREFIX_STATS, UNCOLLECTED_PAGES
from curate.stages.registry import PREFIXES_DIR, SAMPLES_DIR, UNCOLLECTED_DIR

_DOMAIN_COLUMNS = tuple(DOMAIN_STATS.names)
_PREFIX_REQUIRED = ("domain", "prefix", "pages_seen", "pages_collected", "collected_fraction", "sample_urls")
_SIDE_TABLES = (PREFIXES_DIR, SAMPLES_DIR, UNCOLLECTED_DIR)
PREFIXES_SHOWN = 9  # one key each, 1-9
SAMPLES_SHOWN = 5


@dataclass(frozen=True)
class Sample:
    url: str
    title: str
    snippet: str
    collected: bool | None  # None: statistics that do not say


@dataclass(frozen=True)
class PrefixSuggestion:
    pattern: str
    pages_seen: int
    pages_collected: int
    collected_fraction: float


@dataclass(frozen=True)
class DomainItem:
    pattern: str
    pages_seen: int
    pages_collected: int
    collected_fraction: float
    prefixes: tuple[PrefixSuggestion, ...] = ()
    samples: tuple[Sample, ...] = ()


class UncollectedPages:
    """The `_uncollected/` URLs of one site at a time, read on demand (a big site's list stays on disk until shown)."""

    def __init__(self, files: Sequence[Path]) -> None:
        self.files = list(files)
        self._cache: dict[str, pa.ChunkedArray] = {}

    def urls(self, site: str) -> pa.ChunkedArray:
        if site not in self._cache:
            import pyarrow.dataset as ds

            dataset = ds.dataset([str(path) for path in self.files], format="parquet")
            table = dataset.to_table(columns=["url"], filter=pc.field("registered_domain") == site)
            self._cache = {site: table.column("url")}  # one site at a time: screens go domain by domain
        return self._cache[site]


@dataclass
class DomainStats:
    domains: list[dict] = field(default_factory=list)
    prefixes: list[dict] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)
    uncollected: UncollectedPages | None = None


@dataclass
class ReviewQueue:
    items: list[DomainItem]
    skipped_rows: int = 0  # rows whose domain or prefix is not a valid pattern
    uncollected: UncollectedPages | None = None


def _fraction(row: dict) -> float:
    if row.get("collected_fraction") is not None:
        return float(row["collected_fraction"])
    seen = row.get("pages_seen") or 0
    return (row.get("pages_collected") or 0) / seen if seen else 0.0


def _kind(names: list[str]) -> tuple[str, tuple[str, ...], list[str]]:
    """(kind, required columns, columns to read) of one Parquet file, from its column names."""
    if "prefix" in names:
        return "prefixes", _PREFIX_REQUIRED, [c for c in PREFIX_STATS.names if c in names]
    if "flagged" in names:
        return "domains", _DOMAIN_COLUMNS, list(_DOMAIN_COLUMNS)
    if "title" in names:
        return "samples", tuple(DOMAIN_SAMPLES.names), list(DOMAIN_SAMPLES.names)
    if "registered_domain" in names and "pages_seen" not in names:
        return "uncollected", tuple(UNCOLLECTED_PAGES.names), []
    return "", (), []


def load_stats(directory: Path) -> DomainStats:
    """Every dataset under a domains stage directory. `.`-prefixed paths (temporary files) and `_`-prefixed ones
    other than the stage's side tables (`_rejected/`) are ignored."""
    if not directory.is_dir():
        raise ConfigError(f"--stats: {directory} is not a directory")
    stats = DomainStats()
    uncollected: list[Path] = []
    for path in sorted(directory.rglob("*.parquet")):
        parts = path.relative_to(directory).parts
        if any(part.startswith(".") or (part.startswith("_") and part not in _SIDE_TABLES) for part in parts):
            continue
        try:
            names = pq.read_schema(path).names
        except (pa.ArrowException, OSError) as err:
            raise InputError(str(path), f"not a readable Parquet file: {err}") from None
        kind, required, wanted = _kind(names)
        if not kind:
            raise InputError(str(path), "neither domain statistics (no 'flagged' column), prefixes, samples nor pages")
        missing = [c for c in required if c not in names]
        if missing:
            raise InputError(str(path), f"missing column {missing[0]!r}")
        if kind == "uncollected":
            uncollected.append(path)
        else:
            getattr(stats, kind).extend(pq.read_table(path, columns=wanted).to_pylist())
    if not stats.domains:
        raise InputError(str(directory), "no domain statistics (Parquet with a 'flagged' column) found")
    stats.uncollected = UncollectedPages(uncollected) if uncollected else None
    return stats


def _samples(rows: Sequence[dict], prefixes: Sequence[dict]) -> tuple[Sample, ...]:
    """Collected and uncollected pages taken in turn; statistics without `_samples/` fall back on prefix samples."""
    if rows:
        ordered = sorted(rows, key=lambda r: str(r["doc_id"]))
        sides = [[r for r in ordered if r.get("collected")], [r for r in ordered if not r.get("collected")]]
        mixed = [side[i] for i in range(max(map(len, sides))) for side in sides if i < len(side)]
        return tuple(
            Sample(r["url"] or "", r.get("title") or "", r.get("snippet") or "", bool(r.get("collected")))
            for r in mixed[:SAMPLES_SHOWN]
        )
    found: dict[str, Sample] = {}
    for row in prefixes:
        snippets = row.get("sample_snippets") or []
        for i, url in enumerate(row.get("sample_urls") or []):
            if url and url not in found:
                found[url] = Sample(url, "", snippets[i] if i < len(snippets) else "", None)
    return tuple(found[url] for url in sorted(found)[:SAMPLES_SHOWN])


def build_queue(stats: DomainStats, *, all_domains: bool = False) -> ReviewQueue:
    """Flagged domains (every domain with `all_domains`), most pages seen first."""
    queue = ReviewQueue(items=[], uncollected=stats.uncollected)
    prefix_rows: dict[str, list[dict]] = {}
    suggestions: dict[str, list[PrefixSuggestion]] = {}
    for row in stats.prefixes:
        domain = domain_key(row["domain"])
        try:
            pattern = normalize_pattern(row["prefix"])
        except PatternError:
            pattern = ""
        if domain is None or not pattern:
            queue.skipped_rows += 1
            continue
        prefix_rows.setdefault(domain, []).append(row)
        if pattern != domain:
            suggestions.setdefault(domain, []).append(
                PrefixSuggestion(pattern, row["pages_seen"] or 0, row["pages_collected"] or 0, _fraction(row))
            )
    sample_rows: dict[str, list[dict]] = {}
    for row in stats.samples:
        key = domain_key(row["domain"])
        if key is not None:
            sample_rows.setdefault(key, []).append(row)
    rows = [row for row in stats.domains if all_domains or row["flagged"]]
    rows.sort(key=lambda row: (-(row["pages_seen"] or 0), row["domain"]))
    seen: set[str] = set()
    for row in rows:
        domain = domain_key(row["domain"])
        if domain is None:
            queue.skipped_rows += 1
            continue
        if domain in seen:
            continue
        seen.add(domain)
        prefixes = sorted(suggestions.get(domain, []), key=lambda s: (-s.pages_seen, -s.pages_collected, s.pattern))[
            :PREFIXES_SHOWN
        ]
        queue.items.append(
            DomainItem(
                domain,
                row["pages_seen"] or 0,
                row["pages_collected"] or 0,
                _fraction(row),
                tuple(prefixes),
                _samples(sample_rows.get(domain, []), prefix_rows.get(domain, [])),
            )
        )
    return queue
