"""Filesystem operations: local paths directly, object stores through pyarrow, anything else through Hadoop.

Inputs on `s3://` (`s3a://` names the same bucket and key), `gs://` and `http(s)://` are listed on the driver
and streamed by the executors through pyarrow's filesystems (urllib for HTTP, which pyarrow does not
speak): pyarrow is already a dependency, streams in C++, and takes credentials from the standard chains
(environment, profile, instance role) and an S3-compatible endpoint from `AWS_ENDPOINT_URL`. Every other
scheme (`hdfs://`, `viewfs://`, `abfs://`...) has no Python reader that works without native Hadoop
libraries, so it goes through Spark's Hadoop FileSystem layer, as do run directories on cluster
filesystems: curate commits a stage by renaming, which object stores cannot do for directories.
Local paths and `file://` URIs never need a JVM.
"""

from __future__ import annotations

import fnmatch
import functools
import glob
import io
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlparse

from curate.errors import ConfigError, one_line

if TYPE_CHECKING:
    import pyarrow.fs as pafs

# Schemes pyarrow reads and writes itself; `s3a` is Hadoop's name for the same S3 objects.
ARROW_SCHEMES = ("s3", "s3a", "gs", "gcs")
HTTP_SCHEMES = ("http", "https")
# Executors read remote inputs in reads of this size: memory stays flat, requests stay few (125 per GB).
READ_BUFFER_BYTES = 8 * 2**20
S3_ENDPOINT_ENV = "AWS_ENDPOINT_URL"
_GLOB_CHARS = ("*", "?", "[")


def scheme(path: str) -> str:
    return urlparse(str(path)).scheme.lower()


def is_local(path: str) -> bool:
    found = scheme(path)
    return found in ("", "file") or (len(found) == 1 and os.name == "nt")


def is_object_store(path: str) -> bool:
    """On a store pyarrow writes to directly (S3, GCS): no rename, no Hadoop."""
    return scheme(path) in ARROW_SCHEMES


def streams_directly(path: str) -> bool:
    """True if an executor can open `path` itself (local, object store, HTTP); False: read through Hadoop."""
    return is_local(path) or is_object_store(path) or scheme(path) in HTTP_SCHEMES


def local_path(path: str) -> str:
    """`file:///x` -> `/x`; a plain path unchanged."""
    parsed = urlparse(str(path))
    return parsed.path if parsed.scheme == "file" else str(path)


def to_uri(path: str) -> str:
    """An absolute URI Spark understands (local paths become file:// URIs)."""
    if is_local(path):
        return Path(local_path(path)).resolve().as_uri()
    return str(path)


def join(base: str, *parts: str) -> str:
    if is_local(base):
        return str(Path(local_path(base)).joinpath(*parts))
    return "/".join([str(base).rstrip("/"), *parts])


_CREDENTIAL_ERRORS = (
    "ACCESS_DENIED",
    "INVALID_ACCESS_KEY_ID",
    "SIGNATURE_DOES_NOT_MATCH",
    "EXPIRED_TOKEN",
    "FORBIDDEN",
)


def _store_error(exc: OSError) -> str:
    """pyarrow's message, plus what to check when the store refused the credentials (a HEAD request's 403
    carries no error code, so ACCESS_DENIED stands for wrong keys as often as for a missing permission)."""
    text = one_line(exc, 300)
    if any(code in text for code in _CREDENTIAL_ERRORS):
        text += " (check the credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the instance role)"
    return text


# The variables of the standard chains that choose whose credentials a new filesystem signs with.
_CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")


@functools.lru_cache(maxsize=64)
def _store(uri_scheme: str, bucket: str, endpoint: str | None, credentials: tuple[str | None, ...]) -> pafs.FileSystem:
    """One filesystem per bucket, endpoint and credentials, reused by every file of a task: S3 resolves the
    bucket's region with a request when the filesystem is made. Credentials are part of the key so that a
    long-lived process (a notebook, the tests) whose keys change does not keep signing with the old ones."""
    import pyarrow.fs as pafs

    filesystem, _ = pafs.FileSystem.from_uri(f"{uri_scheme}://{bucket}/")
    return filesystem


def arrow_filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    """(pyarrow filesystem, path inside it) for a local path, an object-store URI or any URI pyarrow knows."""
    import pyarrow.fs as pafs

    if is_local(path):
        return pafs.LocalFileSystem(), str(Path(local_path(path)).resolve())
    parsed = urlparse(str(path))
    found = parsed.scheme.lower()
    if found not in ARROW_SCHEMES:
        # hdfs:// through pyarrow's libhdfs binding, where the cluster provides it.
        return pafs.FileSystem.from_uri(str(path))
    uri_scheme = "s3" if found == "s3a" else "gs" if found == "gcs" else found
    credentials = tuple(os.environ.get(name) for name in _CREDENTIAL_ENV)
    return _store(uri_scheme, parsed.netloc, os.environ.get(S3_ENDPOINT_ENV), credentials), parsed.netloc + parsed.path


class _ArrowRawFile(io.RawIOBase):
    """A pyarrow random-access file as a raw stream, so that `io.BufferedReader` buffers it: seekable (the
    WARC reader checks a file's tail) and read in large ranges. (pyarrow's own `readinto` cannot be
    wrapped: BufferedReader then returns wrong bytes.)"""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._handle.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return int(self._handle.seek(offset, whence))

    def tell(self) -> int:
        return int(self._handle.tell())

    def close(self) -> None:
        self._handle.close()
        super().close()


def open_input(path: str) -> BinaryIO:
    """A buffered binary stream over a local, object-store or HTTP file; never the whole file in memory."""
    if is_local(path):
        return open(local_path(path), "rb")
    if scheme(path) in HTTP_SCHEMES:
        # Not seekable: the WARC reader skips its tail check when the size is unknown (file_size None).
        return io.BufferedReader(urllib.request.urlopen(path), READ_BUFFER_BYTES)
    if not is_object_store(path):
        raise OSError(f"{path}: {scheme(path)}:// files are read through Spark's Hadoop layer (binaryFile)")
    filesystem, inner = arrow_filesystem(path)
    return io.BufferedReader(_ArrowRawFile(filesystem.open_input_file(inner)), READ_BUFFER_BYTES)


def use_s3_endpoint(endpoint: str | None) -> dict[str, str]:
    """Point every S3 access of this process at `endpoint` (or leave `AWS_ENDPOINT_URL` as set), and return
    the Spark settings that give executors the same endpoint. Credentials stay with each host's chain."""
    if endpoint:
        parsed = urlparse(endpoint)
        if parsed.scheme not in HTTP_SCHEMES or not parsed.netloc:
            raise ConfigError(f"S3 endpoint {endpoint!r}: expected http(s)://host[:port]")
        os.environ[S3_ENDPOINT_ENV] = endpoint
    forwarded = {name: os.environ[name] for name in (S3_ENDPOINT_ENV, "AWS_REGION") if os.environ.get(name)}
    return {f"spark.executorEnv.{name}": value for name, value in forwarded.items()}


def file_size(path: str) -> int | None:
    """Size in bytes of a local or object-store file; None if unknown (HTTP, Hadoop schemes, missing)."""
    try:
        if is_local(path):
            return os.path.getsize(local_path(path))
        if is_object_store(path):
            filesystem, inner = arrow_filesystem(path)
            info = filesystem.get_file_info(inner)
            return int(info.size) if info.size is not None else None
    except OSError:
        return None
    return None


def _hadoop(path: str) -> tuple[Any, Any]:
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is None:
        raise RuntimeError(f"{path}: a non-local path needs an active Spark session (Hadoop filesystem layer)")
    jvm: Any = session.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath.getFileSystem(session.sparkContext._jsc.hadoopConfiguration()), hpath


def exists(path: str) -> bool:
    if is_local(path):
        return os.path.exists(local_path(path))
    if is_object_store(path):
        import pyarrow.fs as pafs

        filesystem, inner = arrow_filesystem(path)
        return bool(filesystem.get_file_info(inner).type != pafs.FileType.NotFound)
    fs, hpath = _hadoop(path)
    return bool(fs.exists(hpath))


def remove_tree(path: str) -> None:
    if is_local(path):
        shutil.rmtree(local_path(path), ignore_errors=True)
        return
    fs, hpath = _hadoop(path)
    fs.delete(hpath, True)


def rename(src: str, dst: str) -> None:
    """Atomic on POSIX and HDFS; on S3 a copy (use a committer-backed bucket layout for large runs)."""
    if is_local(src):
        os.replace(local_path(src), local_path(dst))
        return
    fs, hsrc = _hadoop(src)
    _, hdst = _hadoop(dst)
    if not fs.rename(hsrc, hdst):
        raise OSError(f"could not rename {src} to {dst}")


def make_dirs(path: str) -> None:
    if is_local(path):
        os.makedirs(local_path(path), exist_ok=True)
        return
    fs, hpath = _hadoop(path)
    fs.mkdirs(hpath)


def read_text(path: str) -> str | None:
    if is_local(path):
        try:
            return Path(local_path(path)).read_text()
        except FileNotFoundError:
            return None
    if is_object_store(path):
        if file_size(path) is None:
            return None
        with open_input(path) as stream:
            return stream.read().decode()
    fs, hpath = _hadoop(path)
    if not fs.exists(hpath):
        return None
    stream = fs.open(hpath)
    try:
        from pyspark.sql import SparkSession

        jvm: Any = SparkSession.getActiveSession().sparkContext._jvm  # type: ignore[union-attr]
        return str(jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
    finally:
        stream.close()


def write_text(path: str, text: str) -> None:
    if is_local(path):
        target = Path(local_path(path))
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, target)
        return
    if is_object_store(path):
        # An object appears whole when its upload completes: no temporary name needed.
        filesystem, inner = arrow_filesystem(path)
        with filesystem.open_output_stream(inner) as sink:
            sink.write(text.encode())
        return
    fs, hpath = _hadoop(path)
    stream = fs.create(hpath, True)
    try:
        stream.write(bytearray(text.encode()))
    finally:
        stream.close()


# What a directory given as input is searched for. WAT/WET files are accepted when named explicitly, but
# hold no HTML responses, so a directory scan leaves them out.
WARC_SUFFIXES = (".warc.gz", ".warc", ".arc.gz")


def expand_inputs(patterns: list[str]) -> list[str]:
    """Input paths from paths, directories and globs, sorted so runs are deterministic.

    Directories are searched recursively for WARC files. Object-store patterns are listed through pyarrow,
    HTTP URLs are checked with a HEAD request, other remote patterns are expanded by Hadoop's globStatus
    (which needs an active Spark session). A pattern that matches nothing, or cannot be listed, is a
    ConfigError naming it and the cause.
    """
    found: list[str] = []
    for pattern in patterns:
        if is_local(pattern):
            matches = _expand_local(pattern)
        elif is_object_store(pattern):
            matches = _expand_object_store(pattern)
        elif scheme(pattern) in HTTP_SCHEMES:
            matches = _check_http(pattern)
        else:
            matches = _expand_hadoop(pattern)
        if not matches:
            raise ConfigError(f"--input {pattern}: matched no WARC files")
        found.extend(matches)
    return sorted(set(found))


def _expand_local(pattern: str) -> list[str]:
    path = local_path(pattern)
    if os.path.isdir(path):
        matches = [
            p
            for p in glob.glob(os.path.join(path, "**", "*"), recursive=True)
            if os.path.isfile(p) and p.endswith(WARC_SUFFIXES)
        ]
    else:
        matches = [p for p in glob.glob(path) if os.path.isfile(p)]
    return [str(Path(p).resolve()) for p in matches]


def _glob_matches(pattern_parts: list[str], parts: list[str]) -> bool:
    """Shell-style match of a key's `/`-separated parts: `*` stays within one part, `**` spans any number."""
    if not pattern_parts:
        return not parts
    head, rest = pattern_parts[0], pattern_parts[1:]
    if head == "**":
        return any(_glob_matches(rest, parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], head) and _glob_matches(rest, parts[1:])


def _expand_object_store(pattern: str) -> list[str]:
    prefix = pattern[: pattern.index("://") + 3]
    try:
        filesystem, inner = arrow_filesystem(pattern)
        bucket = inner.split("/", 1)[0]
        if any(c in bucket for c in _GLOB_CHARS):
            raise ConfigError(f"--input {pattern}: a bucket name cannot be a pattern")
        matches = _object_store_matches(filesystem, inner)
    except OSError as exc:
        raise ConfigError(f"--input {pattern}: {_store_error(exc)}") from None
    if not matches:
        check_bucket(pattern, "--input")
    return [prefix + path for path in matches]


def check_bucket(path: str, option: str) -> None:
    """One line naming `path` and the cause if its bucket cannot be reached, read or found."""
    import pyarrow.fs as pafs

    try:
        filesystem, inner = arrow_filesystem(path)
        bucket = inner.split("/", 1)[0]
        if filesystem.get_file_info(bucket).type == pafs.FileType.NotFound:
            raise ConfigError(f"{option} {path}: bucket {bucket!r} does not exist (or is not visible to you)")
        # A listing needs valid credentials even where the bucket check does not.
        filesystem.get_file_info(pafs.FileSelector(inner.rstrip("/"), allow_not_found=True))
    except OSError as exc:
        raise ConfigError(f"{option} {path}: {_store_error(exc)}") from None


def _object_store_matches(filesystem: pafs.FileSystem, inner: str) -> list[str]:
    import pyarrow.fs as pafs

    parts = inner.split("/")
    literal = next((i for i, part in enumerate(parts) if any(c in part for c in _GLOB_CHARS)), None)
    if literal is None:
        info = filesystem.get_file_info(inner)
        if info.type == pafs.FileType.File:
            return [inner]
        if info.type != pafs.FileType.Directory:
            return []
        listed = filesystem.get_file_info(pafs.FileSelector(inner.rstrip("/"), recursive=True))
        return [i.path for i in listed if i.type == pafs.FileType.File and i.path.endswith(WARC_SUFFIXES)]
    # List below the last literal part only, one level deep unless the pattern goes deeper.
    base = "/".join(parts[:literal])
    below = parts[literal:]
    listed = filesystem.get_file_info(
        pafs.FileSelector(base, recursive=len(below) > 1 or "**" in below, allow_not_found=True)
    )
    return [
        info.path
        for info in listed
        if info.type == pafs.FileType.File and _glob_matches(below, info.path[len(base) + 1 :].split("/"))
    ]


def _check_http(url: str) -> list[str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=30):
            return [url]
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return []
        raise ConfigError(f"--input {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ConfigError(f"--input {url}: {one_line(exc)}") from None


def _expand_hadoop(pattern: str) -> list[str]:
    from py4j.protocol import Py4JJavaError

    try:
        filesystem, hpath = _hadoop(pattern)
        statuses = filesystem.globStatus(hpath) or []
        return [str(s.getPath().toString()) for s in statuses if s.isFile()]
    except Py4JJavaError as exc:
        # The Java exception's own line (e.g. "UnsupportedFileSystemException: No FileSystem for scheme").
        cause = str(exc.java_exception.toString())
        raise ConfigError(f"--input {pattern}: {one_line(cause)}") from None
