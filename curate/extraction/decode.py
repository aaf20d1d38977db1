"""From HTTP payload bytes to an HTML string: is it HTML at all, and in which charset.

Charset order: byte-order mark, HTTP header, `<meta charset>`, strict UTF-8, then resiliparse's
detector. A declared charset is only trusted if the bytes decode strictly with it (real crawls declare
wrong charsets). Legacy labels map to the WHATWG superset a browser would use (gb2312/gbk -> gb18030,
shift_jis -> cp932, iso-8859-1 -> cp1252, ...), since pages labelled with the narrow charset routinely use
the superset's characters.
"""

from __future__ import annotations

import codecs
import re

# Content types that declare HTML: such a payload is sniffed only for binary bytes, not for markup.
HTML_TYPES = ("text/html", "application/xhtml+xml", "application/xml+xhtml")
SNIFF_BYTES = 4096
META_SCAN_BYTES = 16384
MAX_REPLACEMENT_FRACTION = 0.01

_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_\-:.]{1,40})""", re.IGNORECASE)
_HTML_MARKERS = (b"<html", b"<!doctype html", b"<head", b"<body", b"<title", b"<div", b"<p>", b"<p ", b"<meta", b"<a ")
_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "windows-31j": "cp932",
    "euc-kr": "cp949",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "iso-8859-9": "cp1254",
    "tis-620": "cp874",
    "big5": "big5hkscs",
}


# C0 controls other than tab, newline, form feed and carriage return: text never holds many of them.
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 12, 13))


class NotHtml(ValueError):
    pass


class DecodeFailed(ValueError):
    pass


def sniff_html(payload: bytes, declared_html: bool) -> None:
    """Raise NotHtml unless the bytes look like an HTML document (binary served as text/html is common)."""
    head = payload[:SNIFF_BYTES]
    if not head.strip():
        raise NotHtml("empty payload")
    if not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        controls = len(head) - len(head.translate(None, _CONTROL_BYTES))
        if b"\x00" in head or controls > len(head) * 0.05:
            raise NotHtml("binary bytes")
    if declared_html:
        return
    lowered = head.lower()
    if not any(marker in lowered for marker in _HTML_MARKERS):
        raise NotHtml("no HTML markup in the first 4 KB")


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().lower()
    label = _SUPERSETS.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def meta_charset(payload: bytes) -> str | None:
    match = _META_CHARSET.search(payload[:META_SCAN_BYTES])
    return match.group(1).decode("ascii", "ignore").lower() if match else None


def decode_html(payload: bytes, http_charset: str | None) -> tuple[str, str]:
    """(html text, codec used). Raises DecodeFailed when no charset gives clean text."""
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if payload.startswith(bom):
            try:
                return payload.decode(codec), codec.replace("-sig", "")
            except UnicodeDecodeError:
                break
    tried: list[str] = []
    for label in (http_charset, meta_charset(payload), "utf-8"):
        candidate = _codec(label)
        if candidate is None or candidate in tried:
            continue
        tried.append(candidate)
        try:
            return payload.decode(candidate), candidate
        except UnicodeDecodeError:
            continue
    from resiliparse.parse.encoding import detect_encoding

    codec = _codec(detect_encoding(payload[:65536])) or "utf-8"
    text = payload.decode(codec, errors="replace")
    bad = text.count("\ufffd")
    if bad > max(8, len(text) * MAX_REPLACEMENT_FRACTION):
        raise DecodeFailed(f"{bad} undecodable characters with {codec} (tried {', '.join(tried) or 'none'})")
    return text, codec
