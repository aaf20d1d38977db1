"""Filesystem operations on run directories: local paths directly, anything else through Hadoop.

Spark reads and writes `s3a://` and `hdfs://` through its Hadoop FileSystem layer; the few operations
curate does itself (commit a stage by renaming, write a manifest, list inputs) go through the same layer
so a run directory on a cluster filesystem behaves like a local one. Local paths and `file://` URIs never
need a JVM.
"""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlparse


def is_local(path: str) -> bool:
    scheme = urlparse(str(path)).scheme
    return scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt")


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

    Directories are searched recursively for WARC files. Remote patterns are expanded by Hadoop's globStatus.
    """
    found: list[str] = []
    for pattern in patterns:
        if is_local(pattern):
            path = local_path(pattern)
            if os.path.isdir(path):
                matches = [
                    p
                    for p in glob.glob(os.path.join(path, "**", "*"), recursive=True)
                    if os.path.isfile(p) and p.endswith(WARC_SUFFIXES)
                ]
            else:
                matches = [p for p in glob.glob(path) if os.path.isfile(p)]
            found.extend(str(Path(p).resolve()) for p in matches)
        else:
            fs, hpath = _hadoop(pattern)
            statuses = fs.globStatus(hpath) or []
            found.extend(str(s.getPath().toString()) for s in statuses if s.isFile())
    return sorted(set(found))
