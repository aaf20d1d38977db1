"""Interactive review of domain statistics: one screen per flagged domain, one keypress per label.

Each screen shows the domain's counts, its top URL prefixes (numbered 1-9) with their counts, a few collected and
uncollected sample pages, and what a label would do: how many uncollected pages it would bring into the next seed,
counted with the seed expansion's own matcher and rule (`curate.stages.seed.seed_joining`). `m`/`n` label the
domain and move on; a digit picks a prefix, then `m`/`n` label that prefix and the screen stays for more.

A domain this annotator has labelled (or labelled a listed prefix of, any iteration) or skipped in this iteration is
left out, which is how a review resumes where it stopped: labels live in the store, skips in a small progress file
under `<root>/.review/`.

Everything printed from the statistics (domains, URLs, titles, snippets) is crawled content: it goes through
`clean_for_terminal` and into rich `Text` objects, never into markup strings.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from curate.annotate.patterns import PatternMatcher
from curate.annotate.stats import DomainItem, ReviewQueue
from curate.annotate.store import MATH, NOT_MATH, AnnotationStore, AppendReceipt, check_annotator
from curate.errors import InputError

_SPACES = re.compile(r"\s+")


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


class ReviewProgress:
    """The domains an annotator skipped in one iteration (labels need no progress file: they are in the store)."""

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
    pattern: str
    receipt: AppendReceipt | None = None


@dataclass
class ReviewSummary:
    math: int = 0
    not_math: int = 0
    skipped: int = 0
    undone: int = 0
    remaining: int = 0


KEYS_HELP = "m math  n not-math  1-9 prefix  0 domain  s skip  u undo  q quit"


def _site(pattern: str) -> str:
    from curate.steps.urls import registered_domain

    return registered_domain(pattern.partition("/")[0])


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
        self._under: dict[str, pa.ChunkedArray] = {}  # pattern -> the uncollected URLs it covers
        self._changes: dict[tuple, tuple[int, int]] = {}

    def _pending(self, index: int) -> bool:
        item = self.queue.items[index]
        if item.pattern in self.labelled or item.pattern in self.progress.skipped:
            return False
        return not any(prefix.pattern in self.labelled for prefix in item.prefixes)

    def _next(self, index: int) -> int:
        while index < len(self.queue.items) and not self._pending(index):
            index += 1
        return index

    def remaining(self) -> int:
        return sum(1 for i in range(len(self.queue.items)) if self._pending(i))

    def run(self) -> ReviewSummary:
        index = self._next(0)
        chosen: int | None = None  # the picked prefix of the current screen, None: the whole domain
        while True:
            if index >= len(self.queue.items):
                self.console.print(Text(f"Review queue done ({len(self.queue.items)} domains).   u undo   q quit"))
                key = self._key()
                if key == "u" and self.history:
                    index, chosen = self._undo(), None
                    continue
                break
            item = self.queue.items[index]
            self._render(index, chosen)
            key = self._key()
            if key == "q":
                break
            if key == "u":
                if self.history:
                    index, chosen = self._undo(), None
                else:
                    self.console.print(Text("nothing to undo in this session", style="yellow"))
            elif key.isdigit():
                number = int(key)
                if number == 0 or number <= len(item.prefixes):
                    chosen = number - 1 if number else None
                else:
                    self.console.print(Text(f"no prefix {number} on this screen", style="yellow"))
            elif key in ("m", "n"):
                pattern = item.prefixes[chosen].pattern if chosen is not None else item.pattern
                self._label(index, key, pattern, "prefix" if chosen is not None else "domain")
                if chosen is None:
                    index = self._next(index + 1)
                chosen = None
            elif key == "s":
                self.progress.skip(item.pattern)
                self.summary.skipped += 1
                self.history.append(_Action(index, key, item.pattern))
                self.console.print(Text(f"skipped {item.pattern}"))
                index, chosen = self._next(index + 1), None
            else:
                self.console.print(Text(f"keys: {KEYS_HELP}", style="yellow"))
        self.summary.remaining = self.remaining()
        self.console.print(
            Text(
                f"math {self.summary.math}, not-math {self.summary.not_math}, skipped {self.summary.skipped}, "
                f"undone {self.summary.undone}; {self.summary.remaining} domains left"
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

    def _label(self, index: int, key: str, pattern: str, kind: str) -> None:
        label = MATH if key == "m" else NOT_MATH
        _, receipt = self.store.add(
            pattern, label, annotator=self.annotator, iteration=self.iteration, note=f"review {kind}"
        )
        self.labelled.add(pattern)
        if key == "m":
            self.summary.math += 1
        else:
            self.summary.not_math += 1
        self.history.append(_Action(index, key, pattern, receipt))
        self.console.print(Text(f"marked {pattern} {label}", style="green" if key == "m" else "red"))

    def _undo(self) -> int:
        action = self.history.pop()
        if action.receipt is not None:
            if not self.store.undo(action.receipt):
                self.console.print(
                    Text(f"cannot undo {action.pattern}: its file changed since; use `curate annotate remove`", "red")
                )
                return self._next(action.index)
            self.labelled.discard(action.pattern)
            if action.key == "m":
                self.summary.math -= 1
            else:
                self.summary.not_math -= 1
        else:
            self.progress.unskip(action.pattern)
            self.summary.skipped -= 1
        self.summary.undone += 1
        self.console.print(Text(f"undone: {action.pattern}", style="yellow"))
        return action.index

    def seed_change(self, pattern: str, labels: dict[str, str]) -> tuple[int, int] | None:
        """(pages labelling `pattern` math would add to the next seed, pages not-math would take out), counted on
        the uncollected pages of the pattern's site; None when the statistics hold no `_uncollected/` pages."""
        if self.queue.uncollected is None:
            return None
        from curate.stages.seed import seed_joining

        # Only pages under `pattern` can change: count on those (found once per pattern, kept for re-renders).
        if pattern not in self._under:
            urls = self.queue.uncollected.urls(_site(pattern))
            covered = pa.array(
                [hit is not None for hit in map(PatternMatcher({pattern: MATH}).match, urls.to_pylist())]
            )
            self._under[pattern] = urls.filter(covered) if len(urls) else urls
        key = (pattern, tuple(sorted(labels.items())))
        if key not in self._changes:
            urls = self._under[pattern]
            now = seed_joining(PatternMatcher(labels), urls)
            gain = seed_joining(PatternMatcher({**labels, pattern: MATH}), urls) - now
            loss = now - seed_joining(PatternMatcher({**labels, pattern: NOT_MATH}), urls)
            self._changes = {key: (gain, loss)}  # a screen re-rendered without a new label asks again
        return self._changes[key]

    def _label_text(self, pattern: str, effective: dict, matcher: PatternMatcher) -> Text:
        record = effective.get(pattern)
        if record is not None:
            return Text(f"{record.label} ({record.annotator})")
        hit = matcher.match(pattern)
        if hit is not None:
            return Text(f"{hit[1]} via {hit[0]}", style="dim")
        return Text("-", style="dim")

    def _seed_text(self, pattern: str, labels: dict[str, str]) -> Text:
        change = self.seed_change(pattern, labels)
        if change is None:
            return Text("next seed: unknown (these statistics have no _uncollected/ pages)", style="dim")
        gain, loss = change
        return Text(f"next seed: m adds {gain:,} uncollected pages, n removes {loss:,}", style="bold")

    def _render(self, index: int, chosen: int | None) -> None:
        item: DomainItem = self.queue.items[index]
        effective = self.store.effective()
        matcher = PatternMatcher({p: r.label for p, r in effective.items()})
        # The seed of this iteration counts annotations up to it, exactly as the pipeline's expansion does.
        labels = self.store.labels(up_to_iteration=self.iteration)

        header = Text()
        header.append(f"[{self.remaining()} left] ", style="dim")
        header.append("domain ", style="bold")
        header.append(clean_for_terminal(item.pattern, 120), style="bold cyan")
        header.append(
            f"   seen {item.pages_seen:,}   collected {item.pages_collected:,}   ({item.collected_fraction:.1%})   "
        )
        header.append("label now: ").append_text(self._label_text(item.pattern, effective, matcher))
        parts: list = [header]

        if item.prefixes:
            # Compact (no box, collapsed padding): the whole table fits an 80-column terminal.
            table = Table(
                title=f"top URL prefixes ({len(item.prefixes)})",
                title_justify="left",
                box=None,
                padding=(0, 1),
                collapse_padding=True,
                pad_edge=False,
                expand=False,
            )
            longest = max(len(prefix.pattern) for prefix in item.prefixes)
            table.add_column("#", no_wrap=True, width=3)
            # The prefix is what a person reads first: it keeps its width, the label gives way.
            table.add_column("prefix", no_wrap=True, overflow="ellipsis", min_width=min(longest, 40))
            for name in ("seen", "collected", "fraction"):
                table.add_column(name, justify="right", no_wrap=True, min_width=len(name))
            table.add_column("label", no_wrap=True, overflow="ellipsis", max_width=20)
            for number, prefix in enumerate(item.prefixes, start=1):
                table.add_row(
                    Text(f"{'>' if chosen == number - 1 else ' '}{number}", style="bold"),
                    Text(clean_for_terminal(prefix.pattern, 80)),
                    Text(f"{prefix.pages_seen:,}"),
                    Text(f"{prefix.pages_collected:,}"),
                    Text(f"{prefix.collected_fraction:.1%}"),
                    self._label_text(prefix.pattern, effective, matcher),
                )
            parts.append(table)
        else:
            parts.append(Text("(no URL prefixes)", style="dim"))

        samples = Text()
        for sample in item.samples:
            state = {True: "collected  ", False: "uncollected", None: "sample     "}[sample.collected]
            samples.append(state + " ", style="green" if sample.collected else "yellow")
            samples.append(clean_for_terminal(sample.url, 140) + "\n", style="underline")
            if sample.title:
                samples.append("    " + clean_for_terminal(sample.title, 120) + "\n", style="bold")
            samples.append("    " + (clean_for_terminal(sample.snippet, 200) or "(no text)") + "\n", style="dim")
        parts.append(samples if item.samples else Text("(no sample pages)", style="dim"))

        if chosen is None:
            target = item.pattern
            parts.append(Text(f"target: domain {clean_for_terminal(target, 120)}   (1-9 picks a prefix, then m or n)"))
        else:
            target = item.prefixes[chosen].pattern
            parts.append(Text(f"target: prefix {chosen + 1} {clean_for_terminal(target, 120)}", style="bold cyan"))
        parts.append(self._seed_text(target, labels))
        self.console.print(Panel(Group(*parts), subtitle=KEYS_HELP))
