"""DecontaminateStep inside run_steps: drops with reasons, cuts, and the hits column."""

from __future__ import annotations

import itertools
import pickle
from pathlib import Path

import pyarrow as pa
import pytest
from support.reference_pages import web_text_pages

from curate.decontam.index import NGramIndex
from curate.decontam.loaders import iter_texts, shared_benchmarks
from curate.decontam.step import DROP_REASON_CONTAMINATED, HITS_COLUMN, DecontaminateStep
from curate.errors import ConfigError
from curate.schema import DROP_DETAIL, DROP_REASON
from curate.step import run_steps

SCHEMA = pa.schema([("doc_id", pa.string()), ("url", pa.string()), ("text", pa.string()), ("n_chars", pa.int64())])


@pytest.fixture(scope="module")
def index_path(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    (spec,) = shared_benchmarks(shared_data, ["gsm8k_test"])
    path = tmp_path_factory.mktemp("decontam") / "gsm8k.npz"
    NGramIndex.build(itertools.islice(iter_texts(spec), 200)).save(path)
    return str(path)


@pytest.fixture(scope="module")
def docs(shared_data: Path) -> tuple[pa.RecordBatch, dict[str, str]]:
    (spec,) = shared_benchmarks(shared_data, ["gsm8k_test"])
    texts = list(itertools.islice(iter_texts(spec), 200))
    question = next(t for t in texts if t.item_id == "3" and t.field == "question")
    answer = next(t for t in texts if t.item_id == "7" and t.field == "answer")
    pages = [p.text for p in itertools.islice(web_text_pages(shared_data), 6)]
    rows = {
        "clean-0": pages[0],
        "clean-1": pages[1],
        "q3": pages[2] + "\n\nHomework help: " + question.text + "\nThanks!",
        "a7": pages[3] + "\n" + answer.text,
        "only-leak": question.text,
        "empty": "",
    }
    batch = pa.RecordBatch.from_pydict(
        {
            "doc_id": list(rows),
            "url": [f"https://example.org/{k}" for k in rows],
            "text": list(rows.values()),
            "n_chars": [len(t) for t in rows.values()],
        },
        schema=SCHEMA,
    )
    return batch, rows


def run(step: DecontaminateStep, batch: pa.RecordBatch) -> pa.Table:
    return pa.Table.from_batches(list(run_steps([step], [batch], SCHEMA)))


def test_drop_mode_drops_with_reason_and_detail(index_path: str, docs) -> None:
    batch, _ = docs
    out = run(DecontaminateStep(index_path), batch).to_pylist()
    by_id = {r["doc_id"]: r for r in out}
    assert {k for k, r in by_id.items() if r[DROP_REASON]} == {"q3", "a7", "only-leak"}
    assert by_id["q3"][DROP_REASON] == DROP_REASON_CONTAMINATED
    assert by_id["q3"][DROP_DETAIL] == "gsm8k_test:3"
    assert by_id["a7"][DROP_DETAIL] == "gsm8k_test:7"
    hit = by_id["q3"][HITS_COLUMN][0]
    assert (hit["benchmark"], hit["item_id"], hit["field"]) == ("gsm8k_test", "3", "question")
    assert docs[1]["q3"][hit["offset"] :].startswith(hit["ngram"])
    assert by_id["clean-0"][HITS_COLUMN] is None and by_id["clean-0"][DROP_REASON] is None
    assert by_id["a7"][HITS_COLUMN][0]["field"] == "answer"


def test_cut_mode_keeps_the_page_without_the_leak(index_path: str, docs) -> None:
    batch, rows = docs
    out = {r["doc_id"]: r for r in run(DecontaminateStep(index_path, mode="cut"), batch).to_pylist()}
    kept = out["q3"]
    assert kept[DROP_REASON] is None
    page = rows["q3"].split("\n\nHomework help: ")[0]
    # The passage runs from the first to the last matched token: the question mark after it stays.
    assert kept["text"] == page + "\n\nHomework help: ?\nThanks!"
    assert kept["n_chars"] == len(kept["text"])
    assert kept[HITS_COLUMN][0]["offset"] == rows["q3"].index("Homework help: ") + len("Homework help: ")
    # A page that was nothing but the leak has nothing left to keep.
    assert out["only-leak"][DROP_REASON] == DROP_REASON_CONTAMINATED
    assert out["clean-1"]["text"] == rows["clean-1"]


def test_step_ships_without_its_index(index_path: str, docs) -> None:
    step = DecontaminateStep(index_path)
    run(step, docs[0])
    clone = pickle.loads(pickle.dumps(step))
    assert len(pickle.dumps(step)) < 2000
    assert run(clone, docs[0]).num_rows == docs[0].num_rows
    assert step.config()["index_digest"] == clone.config()["index_digest"]


def test_bad_arguments(tmp_path: Path, docs) -> None:
    with pytest.raises(ConfigError, match="mode"):
        DecontaminateStep("x.npz", mode="erase")
    with pytest.raises(ConfigError, match="does not exist"):
        run(DecontaminateStep(str(tmp_path / "missing.npz")), docs[0])
