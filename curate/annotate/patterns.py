"""URL patterns (`host/path-prefix`) and the matcher that applies annotations to crawled URLs.

A pattern names a host and an optional path prefix, e.g. `mathoverflow.net/questions`. Matching rules:

- the host matches itself and every subdomain (`stackexchange.com` covers `math.stackexchange.com`), so a
  label on a registered domain from the domain statistics covers all of its hosts;
- the path matches on whole segments: `site.com/q` covers `/q` and `/q/1`, never `/questions`;
- among several matching patterns the most specific wins: the longest host first (`math.x.org` beats
  `x.org/math` on `math.x.org/math`, a subdomain is usually a separate site), then the longest path.
  That is what lets `x.org/math` = math sit under `x.org` = not-math.

URLs and patterns go through the same normalisation: scheme, userinfo, port, query and fragment dropped, host
lowercased with a leading `www.` removed (the same site under two spellings), path segments kept case-sensitive
with empty segments removed (so trailing and doubled slashes do not matter), characters outside RFC 3986 (spaces,
raw UTF-8) percent-encoded and percent escapes uppercased.
Everything here is pure Python and picklable, so a matcher can be shipped to Spark executors.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote, urlsplit

import pyarrow as pa

_HOST_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_PERCENT = re.compile(r"%[0-9a-fA-F]{2}")
# One regex instead of urlsplit: the matcher runs once per crawled URL and urlsplit was half its cost.
_AUTHORITY_PATH = re.compile(r"(?:[A-Za-z][A-Za-z0-9+.-]*:)?//([^/?#]*)([^?#]*)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# RFC 3986 pchar plus "%": segments made only of these are already in canonical form.
_PATH_SAFE = "!$&'()*+,;=:@-._~%"
_NEEDS_QUOTING = re.compile(r"[^A-Za-z0-9" + re.escape(_PATH_SAFE) + "]")


class PatternError(ValueError):
    """A string that cannot be a `host/path-prefix` pattern; the message is the reason."""


def _normal_host(host: str) -> str:
    host = host.lower().rstrip(".")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as err:
            raise PatternError(f"host {host!r} is not a valid internationalised name") from err
    # Only when a registered name remains: `www.com` is a domain of its own.
    if host.startswith("www.") and "." in host[4:]:
        host = host[4:]
    return host


def _normal_segment(segment: str) -> str:
    # Crawled URLs carry raw spaces and UTF-8 in paths as often as their escapes; both spellings must meet.
    if _NEEDS_QUOTING.search(segment):
        segment = quote(segment, safe=_PATH_SAFE)
    if "%" in segment:
        segment = _PERCENT.sub(lambda m: m.group(0).upper(), segment)
    return segment


def _normal_segments(path: str) -> list[str]:
    return [_normal_segment(segment) for segment in path.split("/") if segment]


def _split(text: str) -> tuple[str, list[str]]:
    if "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\t", "").replace("\n", "").replace("\r", "")  # as urlsplit and browsers do
    # Patterns are written without a scheme; the authority only starts after "//".
    found = _AUTHORITY_PATH.match(text if "://" in text or text.startswith("//") else "//" + text)
    if found is None:
        return "", []
    netloc, path = found.groups()
    host = netloc.rpartition("@")[2]
    # An IPv6 literal has colons of its own: let the standard parser unpick it.
    host = (urlsplit("//" + host).hostname or "") if host.startswith("[") else host.partition(":")[0]
    return _normal_host(host), _normal_segments(path)


def split_url(url: str) -> tuple[str, str]:
    """(host, path) of a URL after normalisation; path is "" or "/a/b". Never raises on odd crawled URLs."""
    try:
        host, segments = _split(url.strip())
    except (ValueError, PatternError):
        return "", ""
    return host, "/" + "/".join(segments) if segments else ""


def normalize_pattern(text: str) -> str:
    """The canonical spelling of a pattern; accepts a pasted URL. Raises PatternError with the reason."""
    text = text.strip()
    if not text:
        raise PatternError("empty pattern")
    if _CONTROL.search(text):
        raise PatternError(f"pattern {text!r} contains a control character")
    try:
        host, segments = _split(text)
    except ValueError as err:
        raise PatternError(f"pattern {text!r} is not a URL prefix: {err}") from err
    if not host:
        raise PatternError(f"pattern {text!r} has no host")
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in host.split(".")):
        hint = " (no wildcards: a pattern already covers every subdomain)" if "*" in host else ""
        raise PatternError(f"pattern {text!r}: host {host!r} is not a valid host name{hint}")
    return "/".join([host, *segments])


def matches(url: str, pattern: str) -> bool:
    """True if `url` falls under `pattern` (host or subdomain, whole path segments)."""
    host, path = split_url(url)
    p_host, _, p_path = normalize_pattern(pattern).partition("/")
    if not (host == p_host or host.endswith("." + p_host)):
        return False
    if not p_path:
        return True
    return path == "/" + p_path or path.startswith("/" + p_path + "/")


def domain_key(name: str | None) -> str | None:
    """The pattern spelling of a host or registered domain, as every domain statistic, the review and the matcher
    key it (`www.Archive.org` -> `archive.org`); None for a name that cannot be a pattern."""
    if not name:
        return None
    try:
        key = normalize_pattern(name)
    except PatternError:
        return None
    return key if "/" not in key else None


def url_prefixes(url: str | None, depth: int, domain: str | None = None) -> list[str]:
    """The patterns of a URL's first 1..`depth` path segments (`host/a`, `host/a/b`), and the bare host when it is
    a subdomain of `domain` (a registered-domain key): what the review offers to label inside a domain."""
    host, path = split_url(url or "")
    if domain_key(host) != host:  # no host, or not one a pattern can name
        return []
    segments = path.split("/")[1:] if path else []
    prefixes = [host] if domain is not None and host != domain else []
    prefixes += ["/".join([host, *segments[:n]]) for n in range(1, min(depth, len(segments)) + 1)]
    return prefixes


class PatternMatcher:
    """Labels URLs with the most specific of many patterns. Build once, call `label` per URL.

    Lookups are dictionary probes, one per (host suffix, path prefix) pair, so the cost per URL does not grow
    with the number of patterns.
    """

    def __init__(self, labels: Mapping[str, str]) -> None:
        self._rules: dict[str, dict[str, tuple[str, str]]] = {}
        self._depth: dict[str, int] = {}
        for pattern, label in labels.items():
            canonical = normalize_pattern(pattern)
            host, _, path = canonical.partition("/")
            self._rules.setdefault(host, {})["/" + path if path else ""] = (canonical, label)
            self._depth[host] = max(self._depth.get(host, 0), path.count("/") + 1 if path else 0)

    def __len__(self) -> int:
        return sum(len(paths) for paths in self._rules.values())

    def match(self, url: str | None) -> tuple[str, str] | None:
        """(pattern, label) of the most specific pattern covering `url`, or None."""
        if not url:
            return None
        host, path = split_url(url)
        if not host:
            return None
        segments = path.split("/")[1:] if path else []
        labels = host.split(".")
        for start in range(len(labels)):
            suffix = host if start == 0 else ".".join(labels[start:])
            paths = self._rules.get(suffix)
            if paths is None:
                continue
            for depth in range(min(self._depth[suffix], len(segments)), -1, -1):
                hit = paths.get("/" + "/".join(segments[:depth]) if depth else "")
                if hit is not None:
                    return hit
        return None

    def label(self, url: str | None) -> str | None:
        hit = self.match(url)
        return hit[1] if hit else None

    def labels(self, urls: Iterable[str | None]) -> list[str | None]:
        return [self.label(url) for url in urls]

    def label_array(self, urls: pa.Array | pa.ChunkedArray) -> pa.Array:
        """A string column of labels (null where no pattern applies), for use inside Arrow batch steps."""
        return pa.array(self.labels(urls.to_pylist()), type=pa.string())
