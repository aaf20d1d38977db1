"""LanguageStep on real pages: the same labels and scores as py3langid's own identifier, loaded as shipped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from support.warcs import real_pages

from curate.extraction.decode import decode_html
from curate.extraction.math_html import extract_main_text
from curate.schema import DOCUMENTS
from curate.steps.language import SAMPLE_CHARS, LanguageStep


def test_language_step_matches_py3langid_as_shipped(shared_data: Path) -> None:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    # Every fourth page: English articles, German and Spanish news, Chinese and math pages.
    texts = [extract_main_text(decode_html(page.html, None)[0]).text for page in real_pages(shared_data)[::4]]
    texts.append("   ")  # no text, no language
    batch = pa.RecordBatch.from_pydict(
        {name: texts if name == "text" else [None] * len(texts) for name in DOCUMENTS.names}, schema=DOCUMENTS
    )
    out = LanguageStep().process(batch)
    languages = out.column("language").to_pylist()
    scores = out.column("language_score").to_numpy(zero_copy_only=False)

    shipped = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    assert shipped.nb_ptc.dtype == np.float16  # what the step widens; if this changes, so may the speed note
    with_text = [i for i, text in enumerate(texts) if text[:SAMPLE_CHARS].strip()]
    expected = [shipped.classify(texts[i][:SAMPLE_CHARS]) for i in with_text]
    assert [languages[i] for i in with_text] == [language for language, _ in expected]
    assert np.array_equal(scores[with_text], np.array([score for _, score in expected], dtype=np.float32))
    blank = [i for i in range(len(texts)) if i not in with_text]
    assert blank and all(languages[i] is None and np.isnan(scores[i]) for i in blank)
    assert len(set(languages)) >= 5


def test_the_model_loads_as_shipped_when_no_cache_can_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from curate.cache_dir import CACHE_ENV
    from curate.steps.language_model import load_identifier

    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv(CACHE_ENV, str(blocker / "cache"))
    identifier = load_identifier()
    assert identifier.classify("Der Hund schläft im Garten, weil die Sonne scheint.")[0] == "de"
    assert not (blocker.parent / "cache").exists()


def test_the_unpacked_model_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from curate.cache_dir import CACHE_ENV
    from curate.steps.language_model import load_identifier

    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    first = load_identifier()
    unpacked = sorted(tmp_path.iterdir())
    second = load_identifier()
    assert len(unpacked) == 1 and (unpacked[0] / "done").exists() and sorted(tmp_path.iterdir()) == unpacked
    assert first.classify("¿Dónde está la biblioteca?") == second.classify("¿Dónde está la biblioteca?")


@pytest.mark.parametrize("separated", [True, False], ids=["texts-separated-by-a-byte", "texts-bounded-by-ends"])
def test_batched_language_id_equals_py3langid_on_random_text(separated: bool) -> None:
    """Both walks: texts joined with the model's window-stopping byte, and (for a model without one) texts
    joined bare, each window bounded by its text's end."""
    import random

    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    from curate.steps.language_model import load_identifier

    rng = random.Random(11)
    texts = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))).decode("latin-1") for _ in range(200)]
    texts += ["".join(rng.choice("aé中🙂 \n$\\{}xЖ") for _ in range(rng.randrange(1, 200))) for _ in range(200)]
    texts += ["x", "ab", "\x00", " 1 ", "ÄÖÜ" * 3]
    shipped = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    shipped.nb_ptc = shipped.nb_ptc.astype(np.float32)
    identifier = load_identifier()
    assert identifier._separator == b"\xff"  # py3langid's shipped model reads no 0xFF byte
    if not separated:
        identifier._separator = None
    assert identifier.classify_many(texts) == [shipped.classify(text) for text in texts]
