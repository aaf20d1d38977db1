"""The object-store branch of content fingerprints (size, mtime, head and tail through Hadoop's FileSystem).

It runs against Hadoop's own local filesystem: a `file://` path given to `path_digest` would take the local
branch, so the Hadoop branch is called directly.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.spark


def test_the_object_store_branch_hashes_size_mtime_head_and_tail(spark, tmp_path: Path) -> None:
    from curate.fingerprints import _remote_digest

    big = tmp_path / "dir" / "big.warc"
    big.parent.mkdir()
    big.write_bytes(bytes(range(256)) * (5 * 4096))  # 5 MiB: head, untouched middle, tail
    uri = big.as_uri()
    digests = [_remote_digest(uri)]
    assert _remote_digest(uri) == digests[0]

    def poke(offset: int) -> None:
        stat = big.stat()
        with big.open("r+b") as handle:
            handle.seek(offset)
            handle.write(b"\xff")
        os.utime(big, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    poke(10)  # the head
    digests.append(_remote_digest(uri))
    poke(big.stat().st_size - 10)  # the tail
    digests.append(_remote_digest(uri))
    poke(big.stat().st_size // 2)  # the middle: invisible by design, unless the mtime moves
    assert _remote_digest(uri) == digests[-1]
    os.utime(big, ns=(big.stat().st_atime_ns, big.stat().st_mtime_ns + 10**9))
    digests.append(_remote_digest(uri))
    directory = big.parent.as_uri()
    digests.append(_remote_digest(directory))
    (big.parent / "more.warc").write_bytes(b"x")
    digests.append(_remote_digest(directory))
    assert len(set(digests)) == len(digests)
    assert _remote_digest((tmp_path / "absent").as_uri()) == "missing"
