"""Interactive review of domain statistics: one keypress labels a domain or a path prefix.

The queue is every flagged domain, largest first (pages seen), each followed by its prefix suggestions with the
most collected pages first. A suggestion this annotator has already labelled (any iteration) or skipped in this
iteration is left out, which is how a review resumes where it stopped: labels live in the store, skips in a
small progress file under `<root>/.review/`.

Everything printed from the statistics (domains, URLs, snippets) is crawled content: it goes through
`clean_for_terminal` and into rich `Text` objects, never into markup strings.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from curate.annotate.patterns import PatternError, PatternMatcher, normalize_pattern
from curate.annotate.store import MATH, NOT_MATH, AnnotationStore, AppendReceipt, check_annotator
from curate.errors import ConfigError, InputError
from curate.schema import DOMAIN_STATS, PREFIX_STATS

_DOMAIN_COLUMNS = tuple(DOMAIN_STATS.names)
_PREFIX_REQUIRED = ("domain", "prefix", "pages_seen", "pages_collected", "collected_fraction", "sample_urls")
_SPACES = re.compile(r"\s+")
SAMPLES_SHOWN = 3
PREFIXES_SHOWN = 12


def clean_for_terminal(text: str | None, limit: int = 200) -> str:
    """Crawled text made safe to print: no control, format (bidi overrides, zero-width) or private-use
    characters, so no escape sequence can reach the terminal; whitespace collapsed; at most `limit` chars."""
    if not text:
        return ""
    chars = []
    for ch in text[: limit * 4]:
        category = unicodedata.category(ch)
        chars.append(" " if category[0] == "C" or category in ("Zl", "Zp") else ch)
    cleaned = _SPACES.sub(" ", "".join(chars)).strip()
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


@dataclass(frozen=True)
class Suggestion:
    pattern: str
    domain: str
    kind: str  # "domain" | "prefix"
    pages_seen: int
    pages_collected: int
    collected_fraction: float
    samples: tuple[tuple[str, str], ...] = ()  # (url, snippet)


@dataclass
class ReviewQueue:
    items: list[Suggestion]
    prefixes: dict[str, list[Suggestion]] = field(default_factory=dict)  # domain pattern -> its prefix items
    domains: dict[str, Suggestion] = field(default_factory=dict)
    skipped_rows: int = 0  # rows whose domain or prefix is not a valid pattern


def _fraction(row: dict) -> float:
    if row.get("collected_fraction") is not None:
        return float(row["collected_fraction"])
    seen = row.get("pages_seen") or 0
    return (row.get("pages_collected") or 0) / seen if seen else 0.0


def load_stats(directory: Path) -> tuple[list[dict], list[dict]]:
    """(domain rows, prefix rows) from every Parquet file under `directory`, told apart by their columns so the
    layout of the domains stage's output does not matter. `_`- and `.`-prefixed paths (rejected rows, temporary
    files) are ignored."""
    if not directory.is_dir():
        raise ConfigError(f"--stats: {directory} is not a directory")
    domains: list[dict] = []
    prefixes: list[dict] = []
    for path in sorted(directory.rglob("*.parquet")):
        if any(part.startswith(("_", ".")) for part in path.relative_to(directory).parts):
            continue
        try:
            names = pq.read_schema(path).names
        except (pa.ArrowException, OSError) as err:
            raise InputError(str(path), f"not a readable Parquet file: {err}") from None
        if "prefix" in names:
            missing = [c for c in _PREFIX_REQUIRED if c not in names]
            wanted = [c for c in PREFIX_STATS.names if c in names]
            target = prefixes
        elif "flagged" in names:
            missing = [c for c in _DOMAIN_COLUMNS if c not in names]
            wanted = list(_DOMAIN_COLUMNS)
            target = domains
        else:
            raise InputError(str(path), "neither domain statistics (no 'flagged' column) nor prefix statistics")
        if missing:
            raise InputError(str(path), f"missing column {missing[0]!r}")
        target.extend(pq.read_table(path, columns=wanted).to_pylist())
    if not domains:
        raise InputError(str(directory), "no domain statistics (Parquet with a 'flagged' column) found")
    return domains, prefixes


def build_queue(domain_rows: Sequence[dict], prefix_rows: Sequence[dict], *, all_domains: bool = False) -> ReviewQueue:
    queue = ReviewQueue(items=[])
    by_domain: dict[str, list[Suggestion]] = {}
    for row in prefix_rows:
        try:
            domain, pattern = normalize_pattern(row["domain"]), normalize_pattern(row["prefix"])
        except PatternError:
            queue.skipped_rows += 1
            continue
        urls = row.get("sample_urls") or []
        snippets = row.get("sample_snippets") or []
        samples = tuple((url, snippets[i] if i < len(snippets) else "") for i, url in enumerate(urls) if url)
        by_domain.setdefault(domain, []).append(
            Suggestion(
                pattern, domain, "prefix", row["pages_seen"] or 0, row["pages_collected"] or 0, _fraction(row), samples
            )
        )
    for suggestions in by_domain.values():
        suggestions.sort(key=lambda s: (-s.pages_collected, -s.pages_seen, s.pattern))
    rows = [row for row in domain_rows if all_domains or row["flagged"]]
    rows.sort(key=lambda row: (-(row["pages_seen"] or 0), row["domain"]))
    for row in rows:
        try:
            domain = normalize_pattern(row["domain"])
        except PatternError:
            queue.skipped_rows += 1
            continue
        if domain in queue.domains:
            continue
        children = [s for s in by_domain.get(domain, []) if s.pattern != domain]
        samples = tuple(sample for child in children for sample in child.samples[:1])[:SAMPLES_SHOWN]
        item = Suggestion(
            domain, domain, "domain", row["pages_seen"] or 0, row["pages_collected"] or 0, _fraction(row), samples
        )
        queue.domains[domain] = item
        queue.prefixes[domain] = children
        queue.items.append(item)
        queue.items.extend(children)
    return queue


class ReviewProgress:
    """The patterns an annotator skipped in one iteration (labels need no progress file: they are in the store)."""

    def __init__(self, root: Path, annotator: str, iteration: int) -> None:
        self.path = root / ".review" / f"{check_annotator(annotator)}.iter-{iteration:02d}.json"
        self.skipped: set[str] = set()
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                self.skipped = {str(p) for p in data["skipped"]}
            except (ValueError, KeyError, TypeError) as err:
                raise InputError(
                    str(self.path), f"unreadable review progress ({err}); delete it to start over"
                ) from None

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temp.write_text(json.dumps({"skipped": sorted(self.skipped)}, indent=1) + "\n", encoding="utf-8")
        os.replace(temp, self.path)

    def skip(self, pattern: str) -> None:
        self.skipped.add(pattern)
        self._save()

    def unskip(self, pattern: str) -> None:
        self.skipped.discard(pattern)
        self._save()


@dataclass
class _Action:
    index: int
    key: str  # m | n | s
    receipt: AppendReceipt | None = None


@dataclass
class ReviewSummary:
    math: int = 0
    not_math: int = 0
    skipped: int = 0
    undone: int = 0
    remaining: int = 0


KEYS_HELP = "m math   n not-math   s skip   u undo   q quit"


class ReviewSession:
    def __init__(
        self,
        store: AnnotationStore,
        queue: ReviewQueue,
        *,
        annotator: str,
        iteration: int,
        read_key: Callable[[], str],
        console: Console | None = None,
        revisit_skipped: bool = False,
    ) -> None:
        self.store = store
        self.queue = queue
        self.annotator = check_annotator(annotator)
        self.iteration = iteration
        self.read_key = read_key
        self.console = console or Console(highlight=False)
        self.progress = ReviewProgress(store.root, annotator, iteration)
        if revisit_skipped:
            self.progress.skipped.clear()
        self.labelled = {record.pattern for record in store.read() if record.annotator == annotator}
        self.history: list[_Action] = []
        self.summary = ReviewSummary()

    def _pending(self, index: int) -> bool:
        pattern = self.queue.items[index].pattern
        return pattern not in self.labelled and pattern not in self.progress.skipped

    def _next(self, index: int) -> int:
        while index < len(self.queue.items) and not self._pending(index):
            index += 1
        return index

    def remaining(self) -> int:
        return sum(1 for i in range(len(self.queue.items)) if self._pending(i))

    def run(self) -> ReviewSummary:
        index = self._next(0)
        while True:
            if index >= len(self.queue.items):
                self.console.print(Text(f"Review queue done ({len(self.queue.items)} suggestions).   u undo   q quit"))
                key = self._key()
                if key == "u" and self.history:
                    index = self._undo()
                    continue
                break
            self._render(index)
            key = self._key()
            if key == "q":
                break
            if key == "u":
                if self.history:
                    index = self._undo()
                else:
                    self.console.print(Text("nothing to undo in this session", style="yellow"))
                continue
            if key in ("m", "n", "s"):
                self._act(index, key)
                index = self._next(index + 1)
            else:
                self.console.print(Text(f"keys: {KEYS_HELP}", style="yellow"))
        self.summary.remaining = self.remaining()
        self.console.print(
            Text(
                f"math {self.summary.math}, not-math {self.summary.not_math}, skipped {self.summary.skipped}, "
                f"undone {self.summary.undone}; {self.summary.remaining} suggestions left"
            )
        )
        return self.summary

    def _key(self) -> str:
        try:
            raw = self.read_key()
        except (KeyboardInterrupt, EOFError):
            return "q"
        # Arrow keys and other escape sequences arrive as several bytes at once: not a command.
        if not raw or raw.startswith("\x1b"):
            return ""
        return raw[0].lower()

    def _act(self, index: int, key: str) -> None:
        item = self.queue.items[index]
        if key == "s":
            self.progress.skip(item.pattern)
            self.summary.skipped += 1
            self.history.append(_Action(index, key))
            self.console.print(Text(f"skipped {item.pattern}"))
            return
        label = MATH if key == "m" else NOT_MATH
        _, receipt = self.store.add(
            item.pattern, label, annotator=self.annotator, iteration=self.iteration, note=f"review {item.kind}"
        )
        self.labelled.add(item.pattern)
        if key == "m":
            self.summary.math += 1
        else:
            self.summary.not_math += 1
        self.history.append(_Action(index, key, receipt))
        self.console.print(Text(f"marked {item.pattern} {label}", style="green" if key == "m" else "red"))

    def _undo(self) -> int:
        action = self.history.pop()
        item = self.queue.items[action.index]
        if action.receipt is not None:
            if not self.store.undo(action.receipt):
                self.console.print(
                    Text(f"cannot undo {item.pattern}: its file changed since; use `curate annotate remove`", "red")
                )
                return self._next(action.index)
            self.labelled.discard(item.pattern)
            if action.key == "m":
                self.summary.math -= 1
            else:
                self.summary.not_math -= 1
        else:
            self.progress.unskip(item.pattern)
            self.summary.skipped -= 1
        self.summary.undone += 1
        self.console.print(Text(f"undone: {item.pattern}", style="yellow"))
        return action.index

    def _label_text(self, pattern: str, effective: dict, matcher: PatternMatcher) -> Text:
        record = effective.get(pattern)
        if record is not None:
            return Text(f"{record.label} ({record.annotator}, iter {record.iteration})")
        hit = matcher.match(pattern)
        if hit is not None:
            return Text(f"{hit[1]} via {hit[0]}", style="dim")
        return Text("-", style="dim")

    def _render(self, index: int) -> None:
        item = self.queue.items[index]
        domain = self.queue.domains.get(item.domain)
        effective = self.store.effective()
        matcher = PatternMatcher({p: r.label for p, r in effective.items()})

        header = Text()
        header.append(f"[{self.remaining()} left] ", style="dim")
        header.append(f"{item.kind} ", style="bold")
        header.append(clean_for_terminal(item.pattern, 120), style="bold cyan")
        header.append(
            f"   seen {item.pages_seen:,}   collected {item.pages_collected:,}   ({item.collected_fraction:.1%})"
        )
        current = Text("label now: ").append_text(self._label_text(item.pattern, effective, matcher))
        if domain is not None and item.kind == "prefix":
            current.append(
                f"   domain {domain.pattern}: seen {domain.pages_seen:,}, collected {domain.collected_fraction:.1%}"
            )

        prefixes = self.queue.prefixes.get(item.domain, [])
        table = Table(title=f"prefix suggestions ({len(prefixes)})", expand=False, show_edge=False)
        for name in ("", "prefix", "seen", "collected", "fraction", "label"):
            table.add_column(name, justify="right" if name in ("seen", "collected", "fraction") else "left")
        for prefix in prefixes[:PREFIXES_SHOWN]:
            table.add_row(
                Text(">" if prefix.pattern == item.pattern else ""),
                Text(clean_for_terminal(prefix.pattern, 80)),
                Text(f"{prefix.pages_seen:,}"),
                Text(f"{prefix.pages_collected:,}"),
                Text(f"{prefix.collected_fraction:.1%}"),
                self._label_text(prefix.pattern, effective, matcher),
            )

        samples = Text()
        for url, snippet in item.samples[:SAMPLES_SHOWN]:
            samples.append(clean_for_terminal(url, 160) + "\n", style="underline")
            samples.append("  " + (clean_for_terminal(snippet, 240) or "(no text)") + "\n", style="dim")
        parts: list = [header, current]
        if prefixes:
            parts.append(table)
        parts.append(samples if item.samples else Text("(no sample URLs)", style="dim"))
        self.console.print(Panel(Group(*parts), subtitle=KEYS_HELP))
