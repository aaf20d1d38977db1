"""`curate export`: lineage, frame, shards and manifest, committed atomically."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from curate import __version__
from curate.errors import CurateError
from curate.io import fs
from curate.manifest import config_hash, fingerprint
from curate.run_layout import RunLayout
from curate.schema import (
    EXPORT_FORMAT_VERSION,
)
from curate.stages.dataset_card import CARD_FILE, dataset_card
from curate.stages.export.config import (
    DATA_DIR,
    EXPORT_FORMAT,
    EXPORT_STEP,
    MANIFEST_FILE,
    ORDER,
    WORK_DIR,
    ExportConfig,
    shard_name,
)
from curate.stages.export.frame import export_frame, schema_doc, token_counter
from curate.stages.export.lineage import find_lineage
from curate.stages.export.publish import (
    check_target,
    commit_export,
    git_commit,
    note_earlier_scratch,
    publish_to_object_store,
    read_export_manifest,
    scratch_beside,
    scratch_in_run,
)
from curate.stages.export.shards import (
    WRITE_CONF,
    doc_ids_digest,
    list_files,
    move_shards,
    plan_shards,
    session_conf,
    shard_file_stats,
    write_empty_shard,
    write_shards,
)

if TYPE_CHECKING:
    from curate.stage import RunContext


log = logging.getLogger(__name__)


def run_export(
    ctx: RunContext,
    out_dir: str,
    *,
    source_stage: str | None = None,
    config: ExportConfig | None = None,
) -> dict[str, Any]:
    """Export a run's final corpus (or `source_stage`, a stage path relative to the run) to `out_dir`.

    Returns the manifest written to `out_dir/manifest.json`. An export whose source, lineage stages and
    config are unchanged is not redone (unless `ctx.force`).
    """
    started = time.monotonic()
    config = config or ExportConfig()
    layout = RunLayout.load(ctx.run_dir)
    lineage = find_lineage(layout, source_stage)
    inputs = {stage: layout.manifest(stage).fingerprint for stage in lineage.stages()}  # type: ignore[union-attr]
    settings = {**asdict(config), "source_stage": lineage.source, "order": ORDER}
    digest = config_hash(settings, [EXPORT_STEP])
    export_fingerprint = fingerprint(digest, list(inputs.values()))

    remote = fs.is_object_store(out_dir)
    if remote:
        fs.check_bucket(out_dir, "--out")
    previous = read_export_manifest(out_dir)
    if previous is not None and previous.get("fingerprint") == export_fingerprint and not ctx.force:
        log.info("export in %s is up to date (fingerprint %s): skipped", out_dir, export_fingerprint)
        return previous
    check_target(out_dir)

    if remote:
        tmp = scratch_in_run(ctx.run_dir)
    else:
        tmp = scratch_beside(out_dir, "tmp")
        note_earlier_scratch(out_dir)
    fs.make_dirs(tmp)
    work = fs.join(tmp, WORK_DIR)
    spark = ctx.spark
    counter = token_counter(layout, spark.read.parquet(fs.to_uri(layout.path(lineage.source))).columns, config)
    with session_conf(spark, WRITE_CONF):
        frame = export_frame(spark, layout, lineage, config.tokenizer)
        source_bytes = sum(size for name, size in list_files(layout.path(lineage.source)) if name.endswith(".parquet"))
        plan = plan_shards(frame, source_bytes, work, config)
        log.info("export: planned %d shards in %.1f s", len(plan.shards), time.monotonic() - started)
        if plan.rows == 0:
            fs.make_dirs(fs.join(tmp, DATA_DIR))
            paths = [fs.join(tmp, DATA_DIR, shard_name(0, 1))]
            write_empty_shard(paths[0])
            plan.shards = [{"shard": 0, "first_doc_id": None, "last_doc_id": None, "rows": 0, "bytes": 0, "tokens": 0}]
        else:
            shards_dir = write_shards(frame, plan, work, config)
            paths = move_shards(shards_dir, fs.join(tmp, DATA_DIR), len(plan.shards))
        log.info("export: wrote %d shards at %.1f s", len(paths), time.monotonic() - started)
    stats = spark.sparkContext.parallelize(paths, max(1, len(paths))).map(shard_file_stats).collect()
    fs.remove_tree(work)
    log.info("export: checksums done at %.1f s", time.monotonic() - started)

    shards = []
    for path, planned, stat in zip(paths, plan.shards, stats, strict=True):
        if stat["rows"] != planned["rows"]:
            raise CurateError(f"export: {path} holds {stat['rows']} rows, the plan had {planned['rows']}")
        shards.append(
            {
                "name": path.rsplit("/", 1)[-1],
                "path": f"{DATA_DIR}/{path.rsplit('/', 1)[-1]}",
                "rows": stat["rows"],
                "bytes": stat["bytes"],
                "sha256": stat["sha256"],
                "row_groups": stat["row_groups"],
                "tokens": planned["tokens"],
                "first_doc_id": planned["first_doc_id"],
                "last_doc_id": planned["last_doc_id"],
            }
        )
    total_bytes = sum(s["bytes"] for s in shards)
    wall = time.monotonic() - started
    manifest: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "status": "complete",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "code_version": {"curate": __version__, "git_commit": git_commit()},
        "run_dir": ctx.run_dir,
        "source_stage": lineage.source,
        "lineage": {
            "selects": [stage for _, stage in lineage.selects],
            "dedup": lineage.dedup,
            "decontamination": lineage.decontamination,
        },
        "input_fingerprints": inputs,
        "config": settings,
        "config_hash": digest,
        "fingerprint": export_fingerprint,
        "order": ORDER,
        "token_counter": counter,
        "schema": schema_doc(),
        "rows": sum(s["rows"] for s in shards),
        "bytes": total_bytes,
        "tokens": sum(s["tokens"] for s in shards),
        "doc_ids_sha256": doc_ids_digest(paths),
        "shards": shards,
        "sizing": {
            "target_shard_bytes": config.target_shard_bytes,
            "estimated_raw_bytes": plan.raw_bytes,
            "compressed_per_raw_byte": None if plan.ratio is None else round(plan.ratio, 6),
            "sample_rows": plan.sample_rows,
        },
        "runner": f"spark:{ctx.master or 'default'}",
        "wall_seconds": round(wall, 3),
        "written_mb_per_s": round(total_bytes / 1e6 / wall, 2) if wall > 0 else None,
    }
    fs.write_text(fs.join(tmp, CARD_FILE), dataset_card(layout, manifest))  # before the manifest, written last
    if remote:
        try:
            publish_to_object_store(tmp, out_dir, manifest)
        finally:
            fs.remove_tree(tmp)
        return manifest
    fs.write_text(fs.join(tmp, MANIFEST_FILE), json.dumps(manifest, indent=2) + "\n")
    commit_export(tmp, out_dir)
    return manifest
