"""The annotation store: human labels on URL patterns, kept as git-friendly JSONL text.

Layout: `<root>/iter-NN/<annotator>.jsonl`, one record per line, fields as in `schema.ANNOTATIONS`. Each
annotator only ever writes their own file, so git merges of two annotators' work never conflict.

Writes append one or more whole lines with a single `write()` on an `O_APPEND` descriptor while holding an
exclusive `flock`; readers take a shared lock. Two processes appending to the same file therefore never
interleave or lose lines (flock is advisory and local: keep the store on a local disk, not NFS).

Removal is an append-only tombstone (label `removed`), not a rewrite: history stays in git (who removed what,
when), removing someone else's label never touches their file, and it goes through the same append path as
every other write, so there is no read-modify-write race. The one exception is `undo` of a line this process
has just written, which truncates it away only while it is still the file's last line.

Effective annotations: the latest record per pattern wins, across all files. "Latest" is the record time;
equal times are ordered by iteration, then annotator name, then file and line, so the result does not depend
on directory listing order.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from curate.annotate.patterns import PatternError, PatternMatcher, normalize_pattern
from curate.errors import ConfigError, InputError
from curate.schema import ANNOTATIONS

MATH = "math"
NOT_MATH = "not-math"
LABELS = (MATH, NOT_MATH)
REMOVED = "removed"  # tombstone label: the pattern has no annotation from this record on

FIELDS = tuple(ANNOTATIONS.names)
REQUIRED = ("pattern", "label", "annotator", "time", "iteration")

_ITER_DIR = re.compile(r"iter-(\d+)")
_ANNOTATOR = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check_annotator(name: str) -> str:
    """Annotator names become file names, so they are restricted to a portable, path-free alphabet."""
    if not _ANNOTATOR.fullmatch(name):
        raise ConfigError(
            f"annotator {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit "
            "(set --annotator or CURATE_ANNOTATOR)"
        )
    return name


def check_label(label: str) -> str:
    if label not in LABELS:
        raise ConfigError(f"label {label!r}: expected one of {', '.join(LABELS)}")
    return label


@dataclass(frozen=True)
class Annotation:
    pattern: str
    label: str  # math | not-math | removed
    annotator: str
    time: str  # ISO-8601 UTC
    iteration: int
    note: str | None = None
    path: str = ""  # where it was read from; empty for records not yet written
    line: int = 0

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def removed(self) -> bool:
        return self.label == REMOVED

    def to_json(self) -> str:
        record = {name: getattr(self, name) for name in FIELDS}
        text = json.dumps(record, ensure_ascii=False)
        # JSON allows these raw, but str.splitlines and many editors break lines on them: keep one record a line.
        return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").replace("\x85", "\\u0085")

    def order_key(self) -> tuple[datetime, int, str, str, int]:
        return (_parse_time(self.time), self.iteration, self.annotator, self.path, self.line)


def _parse_time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    offset = parsed.utcoffset()
    if offset is None or offset.total_seconds() != 0:
        raise ValueError("not UTC")
    return parsed


def parse_record(text: str, path: str, line: int) -> Annotation:
    """One JSONL line -> Annotation; any defect raises InputError("path:line", reason)."""
    location = f"{path}:{line}"
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(location, f"bad JSON: {err.msg} at column {err.colno}") from None
    if not isinstance(record, dict):
        raise InputError(location, f"expected a JSON object, got {type(record).__name__}")
    unknown = sorted(set(record) - set(FIELDS))
    if unknown:
        raise InputError(location, f"unknown field {unknown[0]!r} (fields: {', '.join(FIELDS)})")
    for name in REQUIRED:
        if record.get(name) is None:
            raise InputError(location, f"missing field {name!r}")
    for name in ("pattern", "label", "annotator", "time"):
        if not isinstance(record[name], str):
            raise InputError(location, f"field {name!r} must be a string")
    if record["label"] not in (*LABELS, REMOVED):
        raise InputError(location, f"unknown label {record['label']!r} (expected math, not-math or removed)")
    try:
        canonical = normalize_pattern(record["pattern"])
    except PatternError as err:
        raise InputError(location, f"bad pattern: {err}") from None
    if canonical != record["pattern"]:
        # One spelling per pattern keeps grep and git diffs meaningful; `import` normalises, files must not.
        raise InputError(location, f"bad pattern: {record['pattern']!r} is not normalised (write {canonical!r})")
    if not _ANNOTATOR.fullmatch(record["annotator"]):
        raise InputError(location, f"bad annotator name {record['annotator']!r}")
    try:
        _parse_time(record["time"])
    except ValueError:
        raise InputError(location, f"bad time {record['time']!r}: expected ISO-8601 UTC like {utc_now()}") from None
    iteration = record["iteration"]
    if isinstance(iteration, bool) or not isinstance(iteration, int) or iteration < 1:
        raise InputError(location, f"bad iteration {iteration!r}: expected an integer >= 1")
    note = record.get("note")
    if note is not None and not isinstance(note, str):
        raise InputError(location, "field 'note' must be a string or null")
    return Annotation(
        record["pattern"], record["label"], record["annotator"], record["time"], iteration, note, path, line
    )


@dataclass(frozen=True)
class AppendReceipt:
    """What one append wrote and where; lets the same process take it back (`AnnotationStore.undo`)."""

    path: Path
    start: int
    data: bytes


class AnnotationStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path_for(self, annotator: str, iteration: int) -> Path:
        if iteration < 1:
            raise ConfigError(f"iteration {iteration}: iterations are numbered from 1")
        return self.root / f"iter-{iteration:02d}" / f"{check_annotator(annotator)}.jsonl"

    def iterations(self) -> list[int]:
        if not self.root.is_dir():
            return []
        found = (_ITER_DIR.fullmatch(entry.name) for entry in self.root.iterdir() if entry.is_dir())
        return sorted(int(m.group(1)) for m in found if m)

    def files(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(
            path
            for entry in self.root.iterdir()
            if entry.is_dir() and _ITER_DIR.fullmatch(entry.name)
            for path in entry.glob("*.jsonl")
            if not path.name.startswith(".")
        )

    def _read_file(self, path: Path) -> Iterator[Annotation | InputError]:
        expected_iteration = int(_ITER_DIR.fullmatch(path.parent.name).group(1))  # type: ignore[union-attr]
        with open(path, "rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH)
            data = handle.read()
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            location = f"{path}:{number}"
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                yield InputError(location, f"not UTF-8 (byte {err.start})")
                continue
            try:
                record = parse_record(text, str(path), number)
            except InputError as err:
                yield err
                continue
            # The file name and directory are part of the record's identity; a copied line would lie.
            if record.iteration != expected_iteration:
                yield InputError(location, f"iteration {record.iteration} does not match directory {path.parent.name}")
            elif record.annotator != path.stem:
                yield InputError(location, f"annotator {record.annotator!r} does not match file {path.name}")
            else:
                yield record

    def read(self) -> list[Annotation]:
        """Every record of every file, in file then line order; the first defect raises InputError."""
        records = []
        for path in self.files():
            for item in self._read_file(path):
                if isinstance(item, InputError):
                    raise item
                records.append(item)
        return records

    def validate(self) -> tuple[int, list[InputError]]:
        """(number of valid records, every defect found): unlike `read`, does not stop at the first one."""
        count, errors = 0, []
        for path in self.files():
            for item in self._read_file(path):
                if isinstance(item, InputError):
                    errors.append(item)
                else:
                    count += 1
        return count, errors

    def effective(self, records: Sequence[Annotation] | None = None) -> dict[str, Annotation]:
        """pattern -> its latest record, tombstoned patterns left out, sorted by pattern."""
        latest: dict[str, Annotation] = {}
        for record in sorted(self.read() if records is None else records, key=Annotation.order_key):
            latest[record.pattern] = record
        return {pattern: latest[pattern] for pattern in sorted(latest) if not latest[pattern].removed}

    def labels(self, up_to_iteration: int | None = None) -> dict[str, str]:
        """pattern -> label of the effective annotations; with `up_to_iteration`, only records of iterations up to
        it count, which is what the seed expansion of that iteration applies."""
        records = self.read()
        if up_to_iteration is not None:
            records = [record for record in records if record.iteration <= up_to_iteration]
        return {pattern: record.label for pattern, record in self.effective(records).items()}

    def matcher(self, up_to_iteration: int | None = None) -> PatternMatcher:
        return PatternMatcher(self.labels(up_to_iteration))

    def append(self, records: Sequence[Annotation]) -> AppendReceipt:
        """Append records that all belong to one file, as one atomic write."""
        if not records:
            raise ValueError("nothing to append")
        path = self.path_for(records[0].annotator, records[0].iteration)
        if any(self.path_for(r.annotator, r.iteration) != path for r in records):
            raise ValueError("records of one append must share annotator and iteration")
        for record in records:
            # Everything written must read back: check with the same parser the loader uses.
            parse_record(record.to_json(), str(path), 0)
        data = "".join(record.to_json() + "\n" for record in records).encode("utf-8")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            # A hand edit or a crash may have left the last line unterminated; never glue a record onto it.
            if size and os.pread(fd, 1, size - 1) != b"\n":
                os.write(fd, b"\n")
                size += 1
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        return AppendReceipt(path, size, data)

    def undo(self, receipt: AppendReceipt) -> bool:
        """Take back an append if it is still the end of its file; False if anything was written after it."""
        try:
            fd = os.open(receipt.path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            end = receipt.start + len(receipt.data)
            if os.fstat(fd).st_size != end or os.pread(fd, len(receipt.data), receipt.start) != receipt.data:
                return False
            os.ftruncate(fd, receipt.start)
            os.fsync(fd)
            return True
        finally:
            os.close(fd)

    def add(
        self, pattern: str, label: str, *, annotator: str, iteration: int, note: str | None = None
    ) -> tuple[Annotation, AppendReceipt]:
        try:
            canonical = normalize_pattern(pattern)
        except PatternError as err:
            raise ConfigError(str(err)) from None
        record = Annotation(canonical, check_label(label), check_annotator(annotator), utc_now(), iteration, note)
        return record, self.append([record])

    def remove(
        self, pattern: str, *, annotator: str, iteration: int, note: str | None = None
    ) -> tuple[Annotation, AppendReceipt]:
        try:
            canonical = normalize_pattern(pattern)
        except PatternError as err:
            raise ConfigError(str(err)) from None
        if canonical not in self.effective():
            raise ConfigError(f"pattern {canonical!r} has no annotation to remove (see `curate annotate list`)")
        record = Annotation(canonical, REMOVED, check_annotator(annotator), utc_now(), iteration, note)
        return record, self.append([record])


@dataclass(frozen=True)
class PatternRow:
    """One row of a file given to `curate annotate import`, already normalised and checked."""

    pattern: str
    label: str
    note: str | None
    location: str


def read_pattern_file(path: Path, default_label: str | None = None) -> list[PatternRow]:
    """Patterns from a JSONL or CSV file (by extension; `.csv` is CSV, anything else JSONL).

    Only `pattern`, `label` and `note` are read; other columns (a spreadsheet's extras, or the annotator and time
    of records exported from another store) are ignored because the importer vouches for the labels anew.
    Patterns may be pasted URLs: they are normalised. A pattern listed twice with two labels is an error.
    """
    rows: list[PatternRow] = []
    seen: dict[str, PatternRow] = {}

    def take(record: object, location: str) -> None:
        if not isinstance(record, dict):
            raise InputError(location, f"expected an object with a 'pattern' field, got {type(record).__name__}")
        raw_pattern = record.get("pattern")
        if not isinstance(raw_pattern, str) or not raw_pattern.strip():
            raise InputError(location, "missing field 'pattern'")
        try:
            pattern = normalize_pattern(raw_pattern)
        except PatternError as err:
            raise InputError(location, f"bad pattern: {err}") from None
        label = record.get("label") or default_label
        if label is None:
            raise InputError(location, "missing field 'label' (or pass --label for the whole file)")
        if label not in LABELS:
            raise InputError(location, f"unknown label {label!r} (expected math or not-math)")
        note = record.get("note") or None
        if note is not None and not isinstance(note, str):
            raise InputError(location, "field 'note' must be a string")
        previous = seen.get(pattern)
        if previous is not None:
            if previous.label != label:
                raise InputError(
                    location, f"{pattern} is labelled {previous.label} at {previous.location}, {label} here"
                )
            return
        row = PatternRow(pattern, label, note, location)
        seen[pattern] = row
        rows.append(row)

    try:
        if path.suffix.lower() == ".csv":
            with open(path, newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                if not reader.fieldnames or "pattern" not in reader.fieldnames:
                    raise InputError(f"{path}:1", "CSV header must name a 'pattern' column (and 'label', 'note')")
                for record in reader:
                    take(record, f"{path}:{reader.line_num}")
        else:
            with open(path, encoding="utf-8") as handle:
                for number, text in enumerate(handle, start=1):
                    if not text.strip():
                        continue
                    try:
                        record = json.loads(text)
                    except json.JSONDecodeError as err:
                        raise InputError(f"{path}:{number}", f"bad JSON: {err.msg} at column {err.colno}") from None
                    take(record, f"{path}:{number}")
    except UnicodeDecodeError as err:
        raise InputError(str(path), f"not UTF-8 (byte {err.start})") from None
    except FileNotFoundError:
        raise ConfigError(f"import: {path} does not exist") from None
    return rows
