"""Fingerprints of what a stage reads that is not another stage: raw files, directories, and code.

- A local file is hashed whole (xxh3-128, streamed in 1 MiB blocks): an in-place edit that keeps the size
  and even the mtime still changes the fingerprint.
- A remote file (`s3a://`, `hdfs://`, ...) is identified by size, modification time and a hash of its
  first and last MiB: reading every byte of a crawl on an object store to decide whether to skip a stage
  would cost as much as the stage.
- A directory is the sorted list of its files (relative path and fingerprint), recursively, so an added,
  removed or edited file anywhere below it changes the directory's fingerprint.
- A piece of code is the hash of its module's source, so editing a step's module re-runs the stages that
  use it without a hand-bumped version.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import sys
from collections.abc import Iterable
from typing import Any

import xxhash

from curate.io import fs
from curate.manifest import canonical_json

_BLOCK = 1 << 20
# Bytes hashed at each end of a remote file.
_EDGE = 1 << 20
MISSING = "missing"


def _local_file_digest(path: str) -> str:
    digest = xxhash.xxh3_128()
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _local_digest(path: str) -> str:
    if os.path.isfile(path):
        return _local_file_digest(path)
    if not os.path.isdir(path):
        return MISSING
    entries = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            entries.append((os.path.relpath(full, path), _local_file_digest(full)))
    return xxhash.xxh3_128(canonical_json(entries).encode()).hexdigest()


def _remote_file_entry(filesystem: Any, status: Any) -> list[Any]:
    from pyspark.sql import SparkSession

    jvm: Any = SparkSession.getActiveSession().sparkContext._jvm  # type: ignore[union-attr]
    size = int(status.getLen())
    digest = xxhash.xxh3_128()
    stream = filesystem.open(status.getPath())
    try:
        digest.update(bytes(jvm.org.apache.commons.io.IOUtils.toByteArray(stream, min(size, _EDGE))))
        if size > _EDGE:
            tail = max(_EDGE, size - _EDGE)
            stream.seek(tail)
            digest.update(bytes(jvm.org.apache.commons.io.IOUtils.toByteArray(stream, size - tail)))
    finally:
        stream.close()
    return [size, int(status.getModificationTime()), digest.hexdigest()]


def _remote_digest(path: str) -> str:
    """Through Hadoop's FileSystem (the same layer Spark reads the path with)."""
    filesystem, hpath = fs._hadoop(path)
    if not filesystem.exists(hpath):
        return MISSING
    status = filesystem.getFileStatus(hpath)
    if not status.isDirectory():
        return xxhash.xxh3_128(canonical_json(_remote_file_entry(filesystem, status)).encode()).hexdigest()
    root = str(status.getPath().toString()).rstrip("/") + "/"
    entries = []
    files = filesystem.listFiles(hpath, True)
    while files.hasNext():
        child = files.next()
        entries.append([str(child.getPath().toString())[len(root) :], *_remote_file_entry(filesystem, child)])
    return xxhash.xxh3_128(canonical_json(sorted(entries)).encode()).hexdigest()


def _arrow_file_entry(filesystem: Any, info: Any) -> list[Any]:
    size = int(info.size or 0)
    digest = xxhash.xxh3_128()
    with filesystem.open_input_file(info.path) as handle:
        digest.update(handle.read_at(min(size, _EDGE), 0))
        if size > _EDGE:
            tail = max(_EDGE, size - _EDGE)
            digest.update(handle.read_at(size - tail, tail))
    return [size, info.mtime_ns, digest.hexdigest()]


def _object_store_digest(path: str) -> str:
    """`s3://`, `gs://`: through pyarrow, the layer the executors read them with (no Hadoop connector)."""
    import pyarrow.fs as pafs

    filesystem, inner = fs.arrow_filesystem(path)
    info = filesystem.get_file_info(inner)
    if info.type == pafs.FileType.NotFound:
        return MISSING
    if info.type == pafs.FileType.File:
        return xxhash.xxh3_128(canonical_json(_arrow_file_entry(filesystem, info)).encode()).hexdigest()
    root = inner.rstrip("/") + "/"
    listed = filesystem.get_file_info(pafs.FileSelector(inner.rstrip("/"), recursive=True))
    entries = [
        [child.path[len(root) :], *_arrow_file_entry(filesystem, child)]
        for child in listed
        if child.type == pafs.FileType.File
    ]
    return xxhash.xxh3_128(canonical_json(sorted(entries)).encode()).hexdigest()


def path_digest(path: str) -> str:
    """The content fingerprint of one file or directory (`missing` if it does not exist)."""
    if fs.is_local(path):
        return _local_digest(fs.local_path(path))
    return _object_store_digest(path) if fs.is_object_store(path) else _remote_digest(path)


def files_fingerprint(paths: Iterable[str]) -> str:
    """One fingerprint for raw inputs (files or directories), by path and content."""
    entries = [(path, path_digest(path)) for path in paths]
    return hashlib.sha256(canonical_json(entries).encode()).hexdigest()[:16]


def code_version(obj: Any) -> str:
    """Hash of the source of the module defining `obj` (a class, a function, or a module)."""
    module = obj if inspect.ismodule(obj) else sys.modules[obj.__module__]
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        # No source (a frozen or compiled-only install): fall back to the package version.
        from curate import __version__

        source = f"{module.__name__}@{__version__}"
    return xxhash.xxh3_64(source.encode()).hexdigest()


def step_classes(step_names: Iterable[str]) -> dict[str, type]:
    """The loaded Step subclasses among `step_names` (names that are not Step classes are left out)."""
    from curate.step import Step

    wanted = set(step_names)
    found: dict[str, type] = {}
    pending = list(Step.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.name in wanted and cls.name not in found:
            found[cls.name] = cls
    return found


def code_versions(step_names: Iterable[str], extra: Iterable[Any] = ()) -> dict[str, str]:
    """{what: source digest} for each named Step class and each extra class, function or module."""
    versions = {name: code_version(cls) for name, cls in step_classes(step_names).items()}
    for obj in extra:
        label = obj.__name__ if inspect.ismodule(obj) else f"{obj.__module__}.{obj.__qualname__}"
        versions[label] = code_version(obj)
    return dict(sorted(versions.items()))
