"""Stages: one Parquet dataset in (or a list of files), one Parquet dataset out, plus a manifest.

Layout of a stage directory:

    <run>/<NN>_<stage>/part-*.parquet      kept rows
    <run>/<NN>_<stage>/_rejected/*.parquet rows dropped, with `drop_reason` / `drop_detail`
    <run>/<NN>_<stage>/_manifest.json      written last

Everything is written into `<NN>_<stage>.tmp/` and renamed into place at the end, so a reader never sees
a half-written stage, and an interrupted stage is simply redone. Spark and pyarrow both ignore paths
starting with `_`, so `_rejected/` never leaks into a read of the stage.

Writing and reading a stage's rows is curate.stage_rows.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from curate.errors import ConfigError, CurateError
from curate.fingerprints import code_versions, files_fingerprint
from curate.io import fs
from curate.manifest import MANIFEST_NAME, Manifest, config_hash, fingerprint, read_manifest, write_manifest
from curate.progress import StageProgress
from curate.schema import NOTE_REASON

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


log = logging.getLogger(__name__)


# A plain name starts with a letter or digit: `.x` and `_x` are hidden from readers, `-x` reads as an option.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


# Suffixes curate gives its own scratch directories beside a stage; a stage named so would overwrite one.
_SCRATCH_SUFFIXES = (".tmp", ".work", ".old")


def plain_stage_name(name: str, option: str = "--name") -> str:
    """`name` if it is one plain directory name (no separators, not empty, not `.`/`..`), else a ConfigError."""
    if not _PLAIN_NAME.fullmatch(name) or name.endswith(_SCRATCH_SUFFIXES):
        raise ConfigError(
            f"{option} {name!r}: a stage name is one plain directory name inside the run "
            "(letters, digits, '.', '_', '-'; not empty, no '/', not ending in .tmp/.work/.old), e.g. 03_near_dedup"
        )
    return name


def checked_stage_path(name: str, option: str = "stage") -> str:
    """A stage's path relative to the run: plain names joined by '/' (`iter-01/02_math_score`), nothing else."""
    for part in name.split("/"):
        if not _PLAIN_NAME.fullmatch(part) or part.endswith(_SCRATCH_SUFFIXES):
            plain_stage_name(name, option)
    return name


@dataclass
class RunContext:
    """Where a run lives and how it executes. `runner` is "spark" (default) or "local" (pyarrow loop)."""

    run_dir: str
    runner: str = "spark"
    master: str | None = None
    force: bool = False
    spark_conf: dict[str, str] = field(default_factory=dict)
    _spark: SparkSession | None = None

    @property
    def spark(self) -> SparkSession:
        if self._spark is None:
            from curate.runners.spark import build_session

            self._spark = build_session(self.master, extra_conf=self.spark_conf)
        return self._spark

    def use_session(self, session: SparkSession) -> RunContext:
        self._spark = session
        return self

    def stage_dir(self, name: str) -> str:
        """Where stage `name` lives; the name is checked so that no stage path leaves the run directory."""
        return fs.join(self.run_dir, *checked_stage_path(name).split("/"))


@dataclass(frozen=True)
class Inputs:
    """What one stage execution reads, and where it writes: the `inputs` of `run(ctx, inputs, config)`.

    `out` is the stage's path in the run (`03_near_dedup`, `iter-02/02_math_score`), a registry name unless a
    user named it. `stages` are finished stage directories, in the order the run function documents; each
    must have finished, and its fingerprint feeds this stage's. `files` are raw files (WARCs), fingerprinted
    by content.
    """

    out: str
    stages: tuple[str, ...] = ()
    files: tuple[str, ...] = ()


class Stage:
    """One execution of a stage, and the one context manager every stage runs in.

        with Stage(ctx, inputs, config=..., steps=[...]) as stage:
            if stage.pending:
                ...write into stage.tmp_path...
                stage.finish(rows_in=..., rows_out=..., drops=...)
        return stage.result

    Entering skips the stage when a finished manifest has the same fingerprint; otherwise it takes the run lock
    and clears the stage's own staging directory `<name>.tmp/`. Leaving after `finish` writes the manifest and
    renames the staging directory into place; leaving on an exception commits nothing and releases the lock.

    `config` is what the fingerprint and the manifest record; `input_fingerprints` cover raw inputs beyond
    `inputs.files` (a seed corpus); `code` names classes, functions or modules (beyond the Step classes in
    `steps`) whose source, when edited, must re-run the stage.
    """

    def __init__(
        self,
        ctx: RunContext,
        inputs: Inputs,
        *,
        config: dict[str, Any],
        steps: list[str],
        input_fingerprints: Iterable[str] = (),
        code: Iterable[Any] = (),
    ) -> None:
        name = inputs.out
        self.ctx = ctx
        self.name = name
        self.config = config
        self.steps = steps
        self.inputs = list(inputs.stages)
        self.path = ctx.stage_dir(name)
        self.tmp_path = self.path + ".tmp"
        fingerprints = list(input_fingerprints)
        if inputs.files:
            fingerprints.append(files_fingerprint(list(inputs.files)))
        self.input_records: list[dict[str, str]] = []
        for input_dir in self.inputs:
            upstream = read_manifest(input_dir)
            if upstream is None:
                raise CurateError(f"stage {name} needs {input_dir}, which has not finished: run that stage first")
            fingerprints.append(upstream.fingerprint)
            self.input_records.append({"path": input_dir, "fingerprint": upstream.fingerprint})
        self.config_hash = config_hash(config, steps)
        self.code_versions = code_versions(steps, code)
        self.fingerprint = fingerprint(self.config_hash, fingerprints, self.code_versions)
        self.manifest: Manifest | None = None
        self._outcome: dict[str, Any] | None = None
        self._started = 0.0
        self._locked = False
        self.progress = StageProgress(name, spark=ctx.runner != "local")

    def __enter__(self) -> Stage:
        done = self._finished()
        if done is not None:
            log.info("stage %s already finished (fingerprint %s): skipped", self.name, done.fingerprint)
            self.manifest = done
            return self
        try:
            self._begin()
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        try:
            if exc_type is None and self.manifest is None:
                self._commit()
        finally:
            self.progress.stop()
            self._release()

    @property
    def result(self) -> Manifest:
        """The stage's manifest once it was skipped or committed."""
        if self.manifest is None:
            raise CurateError(f"stage {self.name} has not finished")
        return self.manifest

    @property
    def pending(self) -> bool:
        """True when the stage must run (no matching finished manifest)."""
        return self.manifest is None

    def finish(
        self,
        *,
        rows_in: int,
        rows_out: int,
        drops: dict[str, int],
        problems: list[dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """The counts the manifest records; leaving the `with` block commits them."""
        self._outcome = {"rows_in": rows_in, "rows_out": rows_out, "drops": drops, "problems": problems, "extra": extra}

    def _finished(self) -> Manifest | None:
        """The committed manifest if this exact stage (config, steps, code, inputs) already ran."""
        if self.ctx.force:
            return None
        manifest = read_manifest(self.path)
        if manifest is not None and manifest.fingerprint == self.fingerprint:
            return manifest
        return None

    def _begin(self) -> None:
        """Lock the run directory (held until the commit) and clear this stage's own staging directory."""
        from curate.run_lock import acquire_run_lock

        acquire_run_lock(self.ctx.run_dir)
        self._locked = True
        self._check_replaceable()
        self._started = time.monotonic()
        self.progress.start()
        fs.remove_tree(self.tmp_path)
        fs.make_dirs(self.tmp_path.rsplit("/", 1)[0])

    def _release(self) -> None:
        if self._locked:
            from curate.run_lock import release_run_lock

            release_run_lock(self.ctx.run_dir)
            self._locked = False

    def _check_replaceable(self) -> None:
        """Committing replaces `self.path`: allowed only for an earlier output of a stage (or an empty directory)."""
        if not fs.exists(self.path) or fs.exists(fs.join(self.path, MANIFEST_NAME)):
            return
        local = fs.local_path(self.path)
        if fs.is_local(self.path) and os.path.isdir(local) and not os.listdir(local):
            return
        raise ConfigError(
            f"{self.path} exists and is not a curate stage (no {MANIFEST_NAME}): "
            "move it away or give the stage another name"
        )

    def _commit(self) -> Manifest:
        if self._outcome is None:
            raise CurateError(f"stage {self.name} ended without recording its counts (Stage.finish)")
        self.progress.stop()
        outcome = self._outcome
        drops = dict(outcome["drops"])
        extra = outcome["extra"] or {}
        notes = drops.pop(NOTE_REASON, 0)
        if notes:
            extra = {**extra, "notes": notes}
        manifest = Manifest(
            stage=self.name,
            fingerprint=self.fingerprint,
            config_hash=self.config_hash,
            config=self.config,
            steps=self.steps,
            inputs=self.input_records,
            rows_in=outcome["rows_in"],
            rows_out=outcome["rows_out"],
            drops=dict(sorted(drops.items())),
            runner=self.ctx.runner if self.ctx.runner == "local" else f"spark:{self.ctx.master or 'default'}",
            wall_seconds=round(time.monotonic() - self._started, 3),
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            problems=outcome["problems"] or [],
            extra=extra,
            code=self.code_versions,
        )
        if not fs.exists(self.tmp_path):
            fs.make_dirs(self.tmp_path)
        write_manifest(self.tmp_path, manifest)
        self._check_replaceable()
        if fs.exists(self.path):
            fs.remove_tree(self.path)
        fs.rename(self.tmp_path, self.path)
        self.manifest = manifest
        return manifest
