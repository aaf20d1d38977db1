"""Benchmark loaders: the shared registry, a new benchmark from config alone, and malformed files."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.decontam.loaders import iter_texts, load_specs, shared_benchmarks, spec_from_dict
from curate.errors import ConfigError, InputError

EXPECTED_ITEMS = {
    "gsm8k_test": 1319,
    "gsm8k_train": 7473,
    "math_test": 5000,
    "math500": 500,
    "agieval_gaokao_cloze": 118,
    "agieval_gaokao_qa": 351,
    "mgsm_zh": 250,
    "mmlu_stem": 3018,
    "ocw": 272,
    "sat": 32,
    "minif2f_test": 244,
    "minif2f_valid": 244,
    "deepseek_gsm8k_test": 1319,
}


def test_registry_loads_every_shared_benchmark(shared_data: Path) -> None:
    specs = shared_benchmarks(shared_data)
    assert [s.name for s in specs] == list(EXPECTED_ITEMS)
    for spec in specs:
        texts = list(iter_texts(spec))
        assert len({t.item_id for t in texts}) == EXPECTED_ITEMS[spec.name], spec.name
        assert {t.field for t in texts} == ({"question", "answer"} if spec.answer_fields else {"question"})
        assert all(t.text for t in texts)


def test_registry_keeps_ids_fields_and_variants(shared_data: Path) -> None:
    (math500,) = shared_benchmarks(shared_data, ["math500"])
    first = next(iter_texts(math500))
    assert (first.item_id, first.field, first.source_field) == ("test/precalculus/807.json", "question", "problem")
    (gsm8k,) = shared_benchmarks(shared_data, ["gsm8k_test"])
    answer = next(t for t in iter_texts(gsm8k) if t.field == "answer")
    assert answer.item_id == "0" and "<<" in answer.text
    assert answer.variants and "<<" not in answer.variants[0]
    (mgsm,) = shared_benchmarks(shared_data, ["mgsm_zh"])
    assert next(iter_texts(mgsm)).text.startswith("珍妮特的鸭子")
    with pytest.raises(ConfigError, match="unknown benchmark"):
        shared_benchmarks(shared_data, ["nope"])


def _write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_new_benchmark_from_yaml_without_code(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _write_jsonl(
        data / "quiz.jsonl",
        [
            {"uid": "q1", "turns": [{"text": "What is the sum of the first ten odd numbers?"}], "sol": ["Add", "them"]},
            {"uid": 7, "turns": [{"text": "Name a prime."}], "sol": "Two."},
        ],
    )
    config = tmp_path / "bench.yaml"
    config.write_text(
        "root: data\n"
        "benchmarks:\n"
        "  - name: quiz\n"
        "    path: quiz.jsonl\n"
        "    id_field: uid\n"
        "    question_fields: [turns.0.text]\n"
        "    answer_fields: sol\n"
    )
    (spec,) = load_specs(config)
    texts = list(iter_texts(spec))
    assert [(t.item_id, t.field, t.text) for t in texts] == [
        ("q1", "question", "What is the sum of the first ten odd numbers?"),
        ("q1", "answer", "Add\nthem"),
        ("7", "question", "Name a prime."),
        ("7", "answer", "Two."),
    ]


def test_parquet_benchmark_with_row_numbers_as_ids(tmp_path: Path) -> None:
    path = tmp_path / "set.parquet"
    pq.write_table(pa.table({"problem": ["One plus one?", "Two plus two?"], "solution": ["2", "4"]}), path)
    spec = spec_from_dict(
        {"name": "pq", "path": str(path), "question_fields": ["problem"], "answer_fields": ["solution"]}
    )
    assert [(t.item_id, t.field) for t in iter_texts(spec)] == [
        ("0", "question"),
        ("0", "answer"),
        ("1", "question"),
        ("1", "answer"),
    ]
    broken = spec_from_dict({"name": "pq", "path": str(path), "question_fields": ["question"]})
    with pytest.raises(InputError) as error:
        list(iter_texts(broken))
    assert error.value.location == f"{path}:1"


@pytest.mark.parametrize(
    ("rows", "line", "reason"),
    [
        ([{"q": "fine"}, {"q": "fine too"}, '{"q": "unterminated'], 3, "invalid JSON"),
        ([{"q": "fine"}, {"other": "x"}], 2, "missing field 'q'"),
        ([{"q": 12}], 1, "field 'q' is int, expected a string"),
        ([{"q": None}], 1, "field 'q' is null"),
        ([{"q": "a"}, "", "[1, 2]"], 3, "expected a JSON object"),
        ([{"q": "a", "id": "x"}, {"q": "b", "id": "x"}], 2, "duplicate item id 'x'"),
        ([{"q": "a", "id": {"nested": 1}}], 1, "id field 'id' is dict"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path: Path, rows: list[object], line: int, reason: str) -> None:
    path = _write_jsonl(tmp_path / "bad.jsonl", rows)
    id_field = "id" if any(isinstance(r, dict) and "id" in r for r in rows) else None
    spec = spec_from_dict({"name": "bad", "path": str(path), "question_fields": ["q"], "id_field": id_field})
    with pytest.raises(InputError) as error:
        list(iter_texts(spec))
    assert error.value.location == f"{path}:{line}"
    assert reason in error.value.reason
    assert str(error.value).startswith(f"{path}:{line}: ")


def test_bad_bytes_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"q": "ok"}\n{"q": "caf\xe9"}\n')
    with pytest.raises(InputError, match=r"latin1.jsonl:2: not UTF-8"):
        list(iter_texts(spec_from_dict({"name": "b", "path": str(path), "question_fields": ["q"]})))
    with pytest.raises(InputError, match="does not exist"):
        list(iter_texts(spec_from_dict({"name": "b", "path": str(tmp_path / "none.jsonl"), "question_fields": ["q"]})))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "x", "path": "p.jsonl"}, "'question_fields' is required"),
        ({"name": "x", "path": "p.jsonl", "question_fields": ["q"], "colour": "red"}, "unknown field"),
        ({"name": "x y", "path": "p.jsonl", "question_fields": ["q"]}, "name must be"),
        ({"name": "x", "path": "p.jsonl", "question_fields": [1]}, "list of strings"),
        ({"name": "x", "path": "p.jsonl", "question_fields": ["q"], "format": "csv"}, "format must be"),
        ({"name": "x", "path": "p.jsonl", "question_fields": ["q"], "strip_patterns": ["("]}, "not a valid regex"),
    ],
)
def test_config_errors_name_the_field(entry: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        spec_from_dict(entry)


def test_duplicate_benchmark_names_are_rejected() -> None:
    entry = {"name": "x", "path": "p.jsonl", "question_fields": ["q"]}
    with pytest.raises(ConfigError, match="used twice"):
        load_specs([entry, entry])
