"""The WARC builder used by tests and benchmarks: real URLs, Common Crawl layout, reproducible bytes."""

from __future__ import annotations

import hashlib
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastwarc.warc import ArchiveIterator, WarcRecordType
from support.warcs import FAKE_URL_PREFIX, Page, real_pages, write_warc
from warcio.archiveiterator import ArchiveIterator as WarcioIterator


@pytest.fixture(scope="module")
def pages(shared_data: Path) -> list[Page]:
    return real_pages(shared_data)


def test_real_pages_carry_their_urls(pages: list[Page]) -> None:
    assert len(pages) == 813
    assert len({page.url for page in pages}) == len(pages)
    by_name = {page.source.name: page for page in pages}
    assert by_name["math_none_mathml_1.html"].url == "https://en.m.wikipedia.org/wiki/Variance"
    assert by_name["die-partei.net.luebeck.html"].url.startswith("https://die-partei.net/luebeck/")
    article = next(page for page in pages if page.source.name.endswith(".html.gz"))
    assert article.url.startswith("http") and not article.url.startswith(FAKE_URL_PREFIX)
    assert article.html.lstrip()[:1] == b"<"  # decompressed
    fake = by_name["img_mimetex_cgi.html"]
    assert fake.url == FAKE_URL_PREFIX + "llm-webkit-ccmath/img_mimetex_cgi.html"
    assert sum(page.url.startswith(FAKE_URL_PREFIX) for page in pages) < 70
    # Every page is an HTTP capture: a WARC reader keeps all of them (a `hard::` label is no URL).
    assert all(page.url.startswith(("http://", "https://")) for page in pages)


def sample(pages: list[Page]) -> list[Page]:
    # A math page, a gzipped article, a fake-URL page, a URL with a space, plus a duplicate URL.
    chosen = [p for p in pages if p.source.name in {"math_katex_latex_2.html", "img_mimetex_cgi.html"}]
    chosen += [next(p for p in pages if p.source.name.endswith(".html.gz"))]
    chosen += [next(p for p in pages if " " in p.url)]
    chosen += [Page(chosen[0].url, b"<html><body>same URL, other page</body></html>", chosen[0].source)]
    return chosen


def read_records(path: Path) -> list:
    out = []
    for record in ArchiveIterator(path.open("rb"), parse_http=True):
        body = record.reader.read()
        out.append((record.record_type, record.record_id, record.headers.get("WARC-Target-URI"), record, body))
    return out


def test_write_warc_layout_and_content(pages: list[Page], tmp_path: Path) -> None:
    chosen = sample(pages)
    path = tmp_path / "sample.warc.gz"
    assert write_warc(chosen, path, repeat=2) == 10
    records = read_records(path)
    kinds = [kind for kind, *_ in records]
    assert kinds == [WarcRecordType.warcinfo] + [WarcRecordType.request, WarcRecordType.response] * 10
    assert len({record_id for _, record_id, *_ in records}) == len(records)
    responses = [r for r in records if r[0] == WarcRecordType.response]
    urls = [url for _, _, url, *_ in responses]
    assert len(set(urls)) == 10
    assert urls[0] == chosen[0].url
    assert urls[4] == chosen[0].url + "?dup=1"
    assert urls[5] == chosen[0].url + "?r=1"
    assert " " not in "".join(urls) and "%20" in urls[3]
    for (_, _, _, record, body), page in zip(responses, chosen * 2, strict=True):
        assert record.http_headers.status_code == 200
        assert body == page.html
        assert record.headers["WARC-Identified-Payload-Type"] == "text/html"
    requests = [r for r in records if r[0] == WarcRecordType.request]
    assert all(resp[3].headers["WARC-Concurrent-To"] == req[1] for req, resp in zip(requests, responses, strict=True))
    assert responses[0][3].headers["WARC-Date"] == "2024-05-20T00:00:01Z"


def test_digests_verify_and_every_record_is_its_own_gzip_member(pages: list[Page], tmp_path: Path) -> None:
    path = tmp_path / "digests.warc.gz"
    write_warc(sample(pages), path, repeat=3)
    checked = 0
    for record in ArchiveIterator(path.open("rb"), parse_http=False):
        assert record.verify_block_digest(consume=True)
        checked += 1
    assert checked == 31
    data = path.read_bytes()
    members = 0
    while data:
        inflater = zlib.decompressobj(31)
        inflater.decompress(data)
        assert inflater.eof
        data = inflater.unused_data
        members += 1
    assert members == 31
    with path.open("rb") as stream:
        warcio_records = list(WarcioIterator(stream, check_digests="raise"))
    assert len(warcio_records) == 31


def test_output_is_deterministic_and_plain_mode_works(pages: list[Page], tmp_path: Path) -> None:
    chosen = sample(pages)[:3]
    first, second = tmp_path / "a" / "x.warc.gz", tmp_path / "b" / "x.warc.gz"
    first.parent.mkdir()
    second.parent.mkdir()
    write_warc(chosen, first, repeat=2)
    write_warc(chosen, second, repeat=2)
    assert hashlib.sha1(first.read_bytes()).digest() == hashlib.sha1(second.read_bytes()).digest()
    other_name = tmp_path / "a" / "y.warc.gz"
    write_warc(chosen, other_name, repeat=2)
    ids = {r[1] for r in read_records(first)}
    assert ids.isdisjoint({r[1] for r in read_records(other_name)})

    plain = tmp_path / "plain.warc"
    start = datetime(2020, 1, 1, tzinfo=UTC)
    assert write_warc(chosen, plain, gzip_per_record=False, start_date=start) == 3
    assert plain.read_bytes().startswith(b"WARC/1.0\r\n")
    responses = [r for r in read_records(plain) if r[0] == WarcRecordType.response]
    assert [body for *_, body in responses] == [page.html for page in chosen]
    assert responses[-1][3].headers["WARC-Date"] == "2020-01-01T00:00:03Z"
    with pytest.raises(ValueError, match="repeat"):
        write_warc(chosen, plain, repeat=0)
