"""URL normalisation, charset decoding, HTML sniffing and the read step's batches: the parts of ingest that need
no JVM."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from curate.extraction.decode import DecodeFailed, NotHtml, decode_html, sniff_html
from curate.io.warc import WarcFileReader
from curate.schema import WARC_RECORDS, with_drop_fields
from curate.steps import read_warc
from curate.steps.urls import BadUrl, normalize_url, registered_domain


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTP://MathOverflow.NET:80/questions/1#answer-2", "http://mathoverflow.net/questions/1"),
        ("https://example.com:443", "https://example.com/"),
        ("https://example.com:8443/a", "https://example.com:8443/a"),
        ("https://example.com/a/./b/../c?utm_source=x&id=3&fbclid=y", "https://example.com/a/c?id=3"),
        ("https://example.com/?b=2&a=1", "https://example.com/?b=2&a=1"),  # server-meaningful order kept
        ("<https://example.com/x>", "https://example.com/x"),
        ("https://bücher.example/", "https://xn--bcher-kva.example/"),
        ("https://example.com/a%20b", "https://example.com/a%20b"),
    ],
)
def test_normalize_url(raw: str, expected: str) -> None:
    assert normalize_url(raw) == expected


@pytest.mark.parametrize("raw", ["", "dns:www.archive.org", "http://", "http://exa mple.com/", "http://host:99999/"])
def test_malformed_urls_are_rejected_with_a_reason(raw: str) -> None:
    with pytest.raises(BadUrl):
        normalize_url(raw)


def test_registered_domain_uses_the_offline_suffix_list() -> None:
    assert registered_domain("a.b.bbc.co.uk") == "bbc.co.uk"
    assert registered_domain("math.stackexchange.com") == "stackexchange.com"


@pytest.mark.parametrize(
    ("text", "encoding", "declared", "codec"),
    [
        ("二次方程的解法：判别式大于零时有两个实根。", "gbk", "gb2312", "gb18030"),
        ("二次方程式の解の公式を使います。", "euc-jp", None, "euc_jp"),
        ("二次方程式の解の公式を使います。", "shift_jis", "shift_jis", "cp932"),
        ("Ein Würfel hat sechs Flächen — Geometrie.", "cp1252", "iso-8859-1", "cp1252"),
    ],
)
def test_decode_html_charsets(text: str, encoding: str, declared: str | None, codec: str) -> None:
    html = f"<html><head><title>t</title></head><body><p>{text}</p></body></html>"
    decoded, used = decode_html(html.encode(encoding), declared)
    assert text in decoded
    assert used == codec


def test_meta_charset_is_used_when_the_header_is_silent() -> None:
    html = '<html><head><meta charset="gbk"></head><body>平面几何中的勾股定理</body></html>'
    decoded, used = decode_html(html.encode("gbk"), None)
    assert "勾股定理" in decoded and used == "gb18030"


def test_a_wrong_declared_charset_is_not_trusted() -> None:
    html = "<html><body>π ≈ 3.14159, ∑ and ∫ are symbols</body></html>"
    decoded, used = decode_html(html.encode("utf-8"), "shift_jis")
    assert "∑" in decoded and used == "utf-8"


def test_undecodable_bytes_are_a_decode_error() -> None:
    payload = b"<html><body>" + bytes(range(128, 256)) * 40 + b"</body></html>"
    with pytest.raises(DecodeFailed):
        decode_html(payload, "utf-8-broken-label")


def test_sniffing_rejects_binary_served_as_html() -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
    with pytest.raises(NotHtml):
        sniff_html(png, declared_html=True)
    with pytest.raises(NotHtml):
        sniff_html(b"just some plain words, no markup at all", declared_html=False)
    sniff_html(b"<!DOCTYPE html><html><body>x</body></html>", declared_html=False)


def test_read_step_batches_equal_arrows_own_conversion_of_the_rows(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real WARC files of every dialect, kept and dropped rows (a payload, none, an empty one) in one batch."""
    paths = sorted([*(shared_data / "cc-warc").rglob("*.gz"), *(shared_data / "web-warc").rglob("*.warc.gz")])
    rows = [row for path in paths for row in WarcFileReader(str(path)).rows()]
    assert any(row.payload for row in rows) and any(row.payload is None for row in rows)
    rows[0].payload = b""
    schema = with_drop_fields(WARC_RECORDS)

    def batches_equal() -> bool:
        return all(
            read_warc.rows_to_batch(chunk, schema).equals(
                pa.RecordBatch.from_pylist([row.as_dict() for row in chunk], schema=schema)
            )
            for chunk in (rows[start : start + 37] for start in range(0, len(rows), 37))
        )

    assert batches_equal()
    kept = [row for row in rows if row.payload is not None]
    joined = read_warc.rows_to_batch(kept[:50], schema).column("payload")
    assert joined.null_count == 0 and joined.to_pylist() == [row.payload for row in kept[:50]]
    # Past what int32 offsets hold, the payloads go through Arrow's own builder.
    monkeypatch.setattr(read_warc, "_MAX_JOINED_BYTES", 10)
    assert batches_equal()
