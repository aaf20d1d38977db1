"""Benchmark loaders: every evaluation set is a file plus a field mapping, so a new one needs no code.

A benchmark is described by a `BenchmarkSpec` (from YAML or a dict):

    - name: gsm8k_test                    # recorded in every hit and in the manifest counts
      path: benchmarks/gsm8k/test.jsonl   # relative paths resolve against the data root
      format: jsonl                       # jsonl | parquet; default from the suffix
      id_field: null                      # null: the 0-based row number is the item id
      question_fields: [question]         # dotted paths, integers index lists: messages.0.content
      answer_fields: [answer]             # worked solutions; short final answers are better left out
      strip_patterns: ["<<[^>]*>>"]       # also index each text with these regexes removed

Both question and answer texts are indexed; every text keeps its benchmark, item id and role
("question" / "answer"). The shared evaluation sets are registered in pipelines/benchmarks.yaml.

Strictness: a file that does not match its mapping is an error, not a partial index (a benchmark silently
missing half its items would pass every test and leak in production). The error names `path:line`
(1-based; for Parquet, the 1-based row) and what was wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from curate.errors import ConfigError, InputError

REGISTRY_PATH = Path(__file__).resolve().parents[2] / "pipelines" / "benchmarks.yaml"
FORMATS = ("jsonl", "parquet")
ROLES = ("question", "answer")


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    path: str
    question_fields: tuple[str, ...]
    answer_fields: tuple[str, ...] = ()
    id_field: str | None = None
    format: str | None = None
    strip_patterns: tuple[str, ...] = ()

    @property
    def file_format(self) -> str:
        if self.format:
            return self.format
        return "parquet" if self.path.endswith(".parquet") else "jsonl"


@dataclass(frozen=True)
class BenchmarkText:
    """One indexed text of one benchmark item. `variants` are extra forms (strip_patterns applied)."""

    benchmark: str
    item_id: str
    field: str  # role: question | answer
    source_field: str
    text: str
    variants: tuple[str, ...] = ()


_SPEC_KEYS = {"name", "path", "question_fields", "answer_fields", "id_field", "format", "strip_patterns"}


def _string_list(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{where} must be a string or a list of strings, got {value!r}")


def spec_from_dict(
    entry: Mapping[str, Any], root: Path | None = None, origin: str = "benchmark config"
) -> BenchmarkSpec:
    """A spec from one mapping; `path` is resolved against `root` when relative."""
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{origin}: each benchmark must be a mapping, got {entry!r}")
    label = f"{origin}: benchmark {entry.get('name', '?')!r}"
    unknown = sorted(set(entry) - _SPEC_KEYS)
    if unknown:
        raise ConfigError(f"{label}: unknown field(s) {', '.join(unknown)}")
    for key in ("name", "path", "question_fields"):
        if not entry.get(key):
            raise ConfigError(f"{label}: field {key!r} is required")
    name, path = entry["name"], entry["path"]
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
        raise ConfigError(f"{label}: name must be letters, digits, '_', '-' or '.' (it is used in drop details)")
    if not isinstance(path, str):
        raise ConfigError(f"{label}: path must be a string")
    fmt = entry.get("format")
    if fmt is not None and fmt not in FORMATS:
        raise ConfigError(f"{label}: format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    id_field = entry.get("id_field")
    if id_field is not None and not isinstance(id_field, str):
        raise ConfigError(f"{label}: id_field must be a string or null")
    strip = _string_list(entry.get("strip_patterns") or [], f"{label}: strip_patterns")
    for pattern in strip:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"{label}: strip pattern {pattern!r} is not a valid regex: {exc}") from exc
    resolved = Path(path) if root is None or Path(path).is_absolute() else Path(root) / path
    return BenchmarkSpec(
        name=name,
        path=str(resolved),
        question_fields=_string_list(entry["question_fields"], f"{label}: question_fields"),
        answer_fields=_string_list(entry.get("answer_fields") or [], f"{label}: answer_fields"),
        id_field=id_field,
        format=fmt,
        strip_patterns=strip,
    )


def load_specs(
    config: str | Path | Mapping[str, Any] | Sequence[Mapping[str, Any]], root: str | Path | None = None
) -> list[BenchmarkSpec]:
    """Specs from a YAML file, a mapping with a `benchmarks` list, or the list itself.

    `root` resolves relative paths; a YAML file may also name its own `root` (relative to the file).
    """
    origin = "benchmark config"
    payload: Any = config
    base_root = Path(root) if root is not None else None
    if isinstance(config, str | Path):
        origin = str(config)
        try:
            payload = yaml.safe_load(Path(config).read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"benchmark config {config} does not exist") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{config}: not valid YAML: {exc}") from exc
        if base_root is None and isinstance(payload, Mapping) and payload.get("root"):
            base_root = Path(config).parent / str(payload["root"])
    if isinstance(payload, Mapping):
        payload = payload.get("benchmarks")
    if not isinstance(payload, list) or not payload:
        raise ConfigError(f"{origin}: expected a non-empty list of benchmarks (under `benchmarks:`)")
    specs = [spec_from_dict(entry, base_root, origin) for entry in payload]
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{origin}: benchmark name(s) used twice: {', '.join(duplicates)}")
    return specs


def shared_benchmarks(root: str | Path, names: Sequence[str] | None = None) -> list[BenchmarkSpec]:
    """The built-in registry (pipelines/benchmarks.yaml) resolved against the data root `root`."""
    specs = load_specs(REGISTRY_PATH, root=root)
    if names is None:
        return specs
    known = {s.name: s for s in specs}
    missing = [n for n in names if n not in known]
    if missing:
        raise ConfigError(f"unknown benchmark(s) {', '.join(missing)}; the registry has {', '.join(known)}")
    return [known[n] for n in names]


def _lookup(record: Any, path: str) -> Any:
    node = record
    for part in path.split("."):
        if isinstance(node, Mapping):
            if part not in node:
                raise KeyError(path)
            node = node[part]
        elif isinstance(node, list) and part.lstrip("-").isdigit():
            index = int(part)
            if not -len(node) <= index < len(node):
                raise KeyError(path)
            node = node[index]
        else:
            raise KeyError(path)
    return node


def _text_of(record: Any, path: str, location: str) -> str:
    try:
        value = _lookup(record, path)
    except KeyError:
        raise InputError(location, f"missing field {path!r}") from None
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    kind = "null" if value is None else type(value).__name__
    raise InputError(location, f"field {path!r} is {kind}, expected a string (or a list of strings)")


def _rows(spec: BenchmarkSpec) -> Iterator[tuple[str, Any]]:
    path = Path(spec.path)
    if not path.is_file():
        raise InputError(str(path), "benchmark file does not exist")
    if spec.file_format == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(str(path), f"not a readable Parquet file: {exc}") from exc
        for number, row in enumerate(table.to_pylist(), start=1):
            yield f"{path}:{number}", row
        return
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            location = f"{path}:{number}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(location, f"not UTF-8: {exc}") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(location, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
            if not isinstance(record, dict):
                raise InputError(location, f"expected a JSON object, got {type(record).__name__}")
            yield location, record


def iter_texts(spec: BenchmarkSpec) -> Iterator[BenchmarkText]:
    """Every question and answer text of a benchmark, in file order. Raises InputError on a bad row."""
    strip = [re.compile(p) for p in spec.strip_patterns]
    seen: dict[str, str] = {}
    for row_number, (location, record) in enumerate(_rows(spec)):
        if spec.id_field is None:
            item_id = str(row_number)
        else:
            try:
                raw_id = _lookup(record, spec.id_field)
            except KeyError:
                raise InputError(location, f"missing id field {spec.id_field!r}") from None
            if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
                raise InputError(location, f"id field {spec.id_field!r} is {type(raw_id).__name__}, expected a string")
            item_id = str(raw_id)
            if item_id in seen:
                raise InputError(location, f"duplicate item id {item_id!r} (first at {seen[item_id]})")
            seen[item_id] = location
        for role, fields in (("question", spec.question_fields), ("answer", spec.answer_fields)):
            for source_field in fields:
                text = _text_of(record, source_field, location)
                stripped = text
                for pattern in strip:
                    # A space, not "": removing `<<48/2=24>>` from `=<<48/2=24>>24` must not glue tokens.
                    stripped = pattern.sub(" ", stripped)
                variants = (stripped,) if stripped != text else ()
                yield BenchmarkText(spec.name, item_id, role, source_field, text, variants)


def load_texts(specs: Sequence[BenchmarkSpec]) -> list[BenchmarkText]:
    return [text for spec in specs for text in iter_texts(spec)]
