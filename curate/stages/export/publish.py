"""Committing an export: scratch directories of its own, the atomic rename (local, HDFS) or the checked upload (object stores)."""

from __future__ import annotations

import json
import logging
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curate.errors import CurateError
from curate.io import fs
from curate.stages.dataset_card import CARD_FILE
from curate.stages.export.config import DATA_DIR, EXPORT_FORMAT, HASH_CHUNK, MANIFEST_FILE
from curate.stages.export.shards import shard_file_stats

if TYPE_CHECKING:
    pass


log = logging.getLogger(__name__)


def git_commit() -> str | None:
    """HEAD of the checkout curate runs from, read from .git (no git process; None outside a checkout)."""
    for parent in Path(__file__).resolve().parents:
        git = parent / ".git"
        if not git.is_dir():
            continue
        try:
            head = (git / "HEAD").read_text().strip()
            if not head.startswith("ref: "):
                return head
            ref = head[5:]
            if (git / ref).is_file():
                return (git / ref).read_text().strip()
            for line in (git / "packed-refs").read_text().splitlines():
                if line.endswith(" " + ref):
                    return line.split()[0]
        except OSError:
            return None
        return None
    return None


def read_export_manifest(out_dir: str) -> dict[str, Any] | None:
    text = fs.read_text(fs.join(out_dir, MANIFEST_FILE))
    if text is None:
        return None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError:
        return None
    if payload.get("format") != EXPORT_FORMAT or payload.get("status") != "complete":
        return None
    return dict(payload)


def scratch_beside(out: str, kind: str) -> str:
    """A new sibling of `out` for this export alone: nothing already beside --out is reused or deleted.

    An interrupted export leaves its `<out>.export-<id>.tmp` behind (never touched again; safe to remove).
    """
    path = f"{out.rstrip('/')}.export-{uuid.uuid4().hex[:12]}.{kind}"
    if fs.exists(path):
        raise CurateError(f"export: scratch directory {path} already exists; run the export again")
    return path


def note_earlier_scratch(out: str) -> None:
    if fs.is_local(out):
        for left in sorted(Path(fs.local_path(out)).parent.glob(Path(out).name + ".export-*.tmp")):
            log.warning("export: %s was left by an interrupted export; curate does not delete it", left)


def scratch_in_run(run_dir: str) -> str:
    """Where an export to an object store is built: Spark writes shards only where Hadoop can, so inside the
    run directory (its `_` prefix keeps it out of the run's stages); the finished shards are uploaded."""
    return fs.join(run_dir, f"_export-{uuid.uuid4().hex[:12]}.tmp")


_SHARD_NAME = re.compile(r"part-\d{5}-of-\d{5}\.parquet")


def _earlier_shards(out: str) -> list[str]:
    """The shards (`data/part-*`) under an object-store `out`; raises if anything there is neither a shard nor
    the card or manifest a curate export wrote."""
    import pyarrow.fs as pafs

    filesystem, root = fs.arrow_filesystem(out)
    listed = filesystem.get_file_info(pafs.FileSelector(root.rstrip("/"), recursive=True, allow_not_found=True))
    found = []
    for info in listed:
        if info.type != pafs.FileType.File:
            continue
        relative = info.path[len(root.rstrip("/")) + 1 :]
        directory, _, name = relative.rpartition("/")
        if relative in (MANIFEST_FILE, CARD_FILE):
            continue
        if not (directory == DATA_DIR and _SHARD_NAME.fullmatch(name)):
            raise CurateError(f"{out} holds {relative}, which a curate export did not write: pick another --out")
        found.append(relative)
    return found


def publish_to_object_store(tmp: str, out: str, manifest: dict[str, Any]) -> None:
    """Upload the finished export in `tmp` to `out` (s3://, gs://): the old manifest goes first, each shard is
    uploaded and its sha256 checked by reading it back, shards of an earlier export that this one does not
    rewrite are removed, then the dataset card, and `manifest.json` last. A failure leaves `out` without a
    manifest."""
    import pyarrow.fs as pafs

    earlier = _earlier_shards(out)
    filesystem, root = fs.arrow_filesystem(out)
    root = root.rstrip("/")
    if fs.exists(fs.join(out, MANIFEST_FILE)):
        filesystem.delete_file(f"{root}/{MANIFEST_FILE}")
    local, local_root = fs.arrow_filesystem(tmp)
    for shard in manifest["shards"]:
        target = fs.join(out, shard["path"])
        pafs.copy_files(
            f"{local_root}/{shard['path']}",
            f"{root}/{shard['path']}",
            source_filesystem=local,
            destination_filesystem=filesystem,
            chunk_size=HASH_CHUNK,
            use_threads=False,
        )
        uploaded = shard_file_stats(target)
        if (uploaded["sha256"], uploaded["bytes"], uploaded["rows"]) != (
            shard["sha256"],
            shard["bytes"],
            shard["rows"],
        ):
            raise CurateError(
                f"export: {target} read back as {uploaded['bytes']} bytes sha256 {uploaded['sha256'][:16]}, "
                f"written {shard['bytes']} bytes sha256 {shard['sha256'][:16]}: the upload is corrupt, run it again"
            )
        log.info("export: uploaded %s (%d bytes, sha256 verified)", target, uploaded["bytes"])
    current = {shard["path"] for shard in manifest["shards"]}
    for relative in earlier:
        if relative not in current:
            filesystem.delete_file(f"{root}/{relative}")
    card = fs.read_text(fs.join(tmp, CARD_FILE))
    if card is None:
        raise CurateError(f"export: {tmp} has no dataset card ({CARD_FILE}) to upload")
    fs.write_text(fs.join(out, CARD_FILE), card)
    fs.write_text(fs.join(out, MANIFEST_FILE), json.dumps(manifest, indent=2) + "\n")


def commit_export(tmp: str, out: str) -> None:
    """Put the finished `tmp` where readers look. Replacing an earlier export leaves `out` absent for the
    moment between two renames (directories cannot be swapped atomically), never half-written."""
    if not fs.exists(out):
        fs.rename(tmp, out)
        return
    old = scratch_beside(out, "old")
    fs.rename(out, old)
    fs.rename(tmp, out)
    fs.remove_tree(old)


def check_target(out: str) -> None:
    if fs.is_object_store(out):
        _earlier_shards(out)  # only a curate export's own files may be there
        return
    if not fs.exists(out) or read_export_manifest(out) is not None:
        return
    if fs.is_local(out) and Path(fs.local_path(out)).is_dir() and not any(Path(fs.local_path(out)).iterdir()):
        return
    raise CurateError(f"{out} exists and is not a curate export: pick another --out or remove it yourself")
