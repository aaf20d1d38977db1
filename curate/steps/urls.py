"""URL normalisation, so that the same page fetched under cosmetic URL variants is one URL.

Rules (applied in this order): scheme and host lower-cased; IDN hosts to punycode; default ports dropped
(http:80, https:443); empty path becomes "/"; dot segments resolved; fragment dropped; tracking query
parameters dropped (utm_*, fbclid, gclid, ...); remaining query parameters kept in their original order
(order can be meaningful to the server). Scheme is kept: http and https may serve different content.
"""

from __future__ import annotations

import posixpath
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.compute as pc

from curate.step import Step, mark_dropped

TRACKING_PARAMS = frozenset(
    {"fbclid", "gclid", "dclid", "msclkid", "yclid", "mc_cid", "mc_eid", "_ga", "_hsenc", "_hsmi", "igshid", "ref_src"}
)
DEFAULT_PORTS = {"http": 80, "https": 443}


class BadUrl(ValueError):
    pass


def normalize_url(url: str) -> str:
    if not url or len(url) > 8192:
        raise BadUrl("empty or longer than 8192 characters")
    text = url.strip()
    if text.startswith("<") and text.endswith(">"):  # WARC/1.0 writers sometimes bracket the URI
        text = text[1:-1]
    try:
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise BadUrl(f"scheme {scheme!r} is not http(s)")
        host = (parts.hostname or "").rstrip(".")
        port = parts.port
    except ValueError as exc:  # urlsplit raises on bad ports and brackets
        raise BadUrl(str(exc)) from exc
    if not host or any(c in host for c in " <>\"'{}|\\^`"):
        raise BadUrl("no valid host")
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host.lower()
    except UnicodeError as exc:
        raise BadUrl(f"bad international host: {exc}") from exc
    netloc = host if port is None or DEFAULT_PORTS.get(scheme) == port else f"{host}:{port}"
    path = parts.path or "/"
    if "/." in path:
        resolved = posixpath.normpath(path)
        path = resolved + ("/" if path.endswith("/") and resolved != "/" else "")
    path = quote(unquote(path), safe="/:@!$&'()*+,;=~%-._")
    query_items = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not (k.lower().startswith("utm_") or k.lower() in TRACKING_PARAMS)
    ]
    query = urlencode(query_items, doseq=True) if query_items else ""
    return urlunsplit((scheme, netloc, path, query, ""))


@lru_cache(maxsize=1)
def _domain_extractor() -> Any:
    import tldextract

    # The suffix list bundled in the wheel: never fetched at run time (executors may have no network).
    return tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def registered_domain(host: str) -> str:
    parts = _domain_extractor()(host)
    if parts.domain and parts.suffix:
        return f"{parts.domain}.{parts.suffix}"
    return host


class NormalizeUrlStep(Step):
    """Replaces `url` by its normalised form and adds `host` and `registered_domain`; drops bad URLs."""

    name = "normalize_url_v1"
    error_reason = "url_error"

    def output_schema(self, input_schema: pa.Schema) -> pa.Schema:
        for name in ("host", "registered_domain"):
            if input_schema.get_field_index(name) < 0:
                input_schema = input_schema.append(pa.field(name, pa.string()))
        return input_schema

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        urls: list[str | None] = []
        hosts: list[str | None] = []
        domains: list[str | None] = []
        errors: list[str | None] = []
        for raw in batch.column("url").to_pylist():
            try:
                url = normalize_url(raw or "")
                host = urlsplit(url).hostname or ""
                urls.append(url)
                hosts.append(host)
                domains.append(registered_domain(host))
                errors.append(None)
            except BadUrl as exc:
                urls.append(raw)
                hosts.append(None)
                domains.append(None)
                errors.append(f"{exc}: {str(raw)[:200]!r}")
        out = batch.set_column(batch.schema.get_field_index("url"), "url", pa.array(urls, pa.string()))
        out = out.append_column("host", pa.array(hosts, pa.string()))
        out = out.append_column("registered_domain", pa.array(domains, pa.string()))
        error_array = pa.array(errors, pa.string())
        return mark_dropped(out, pc.is_valid(error_array), "bad_url", error_array)
