"""What a run directory holds: its stages in order, which of them finished, and where the side tables live.

`run.json` (written by `curate run`) declares the stages and the final one. Without it (stages run one by
one from the CLI) the layout is discovered: every directory holding a `_manifest.json`, top-level stages
numbered below 90 first, then `iter-NN/` stages by iteration, then the 90+ stages (decontamination).
Readers (export, report) must cope with any stage being absent, so every lookup here returns None or an
empty list rather than raising.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.errors import ConfigError, CurateError
from curate.io import fs
from curate.manifest import MANIFEST_NAME, Manifest, read_manifest
from curate.stages.registry import AFTER_ITERATIONS, ITERATION_PREFIX, StageKind, kind_of

RUN_JSON = "run.json"
_ITER_RE = re.compile(rf"^{ITERATION_PREFIX}(\d+)$")
_NUMBERED_RE = re.compile(r"^(\d+)_")


def iteration_of(stage: str) -> int | None:
    """`iter-02/03_select` -> 2; a top-level stage -> None."""
    head = stage.split("/", 1)[0]
    match = _ITER_RE.match(head)
    return int(match.group(1)) if match and "/" in stage else None


def _order_key(stage: str) -> tuple[int, int, str]:
    iteration = iteration_of(stage)
    if iteration is not None:
        return (1, iteration, stage)
    match = _NUMBERED_RE.match(stage)
    number = int(match.group(1)) if match else 0
    return (2 if number >= AFTER_ITERATIONS else 0, 0, stage)


def _discover(run_dir: str) -> list[str]:
    if not fs.is_local(run_dir):
        raise CurateError(f"{run_dir} has no {RUN_JSON}: stages of a remote run cannot be discovered, pass --stage")
    root = fs.local_path(run_dir)
    found = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name) if os.path.isdir(root) else []:
        if not entry.is_dir() or entry.name.startswith((".", "_")) or entry.name.endswith(".tmp"):
            continue
        if os.path.exists(os.path.join(entry.path, MANIFEST_NAME)):
            found.append(entry.name)
        elif _ITER_RE.match(entry.name):
            for child in sorted(os.scandir(entry.path), key=lambda e: e.name):
                if child.is_dir() and os.path.exists(os.path.join(child.path, MANIFEST_NAME)):
                    found.append(f"{entry.name}/{child.name}")
    return sorted(found, key=_order_key)


@dataclass
class RunLayout:
    run_dir: str
    stages: list[str]
    declared: bool
    final_stage: str | None = None
    iterations: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    _manifests: dict[str, Manifest | None] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, run_dir: str) -> RunLayout:
        text = fs.read_text(fs.join(run_dir, RUN_JSON))
        if text is None:
            return cls(run_dir, _discover(run_dir), declared=False)
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{fs.join(run_dir, RUN_JSON)} is not valid JSON ({exc}): fix or delete it") from exc
        if not isinstance(payload, dict):
            raise ConfigError(
                f"{fs.join(run_dir, RUN_JSON)} holds a JSON {type(payload).__name__}, not the object `curate run` "
                "writes: fix or delete it"
            )
        stages = [str(s) for s in payload.get("stages") or []]
        if fs.is_local(run_dir):
            # Stages run by hand after `curate run` (or by another version) are shown too.
            stages += [s for s in _discover(run_dir) if s not in stages]
        final = payload.get("final_stage")
        return cls(
            run_dir,
            stages,
            declared=True,
            final_stage=str(final) if final else None,
            iterations=payload.get("iterations"),
            config=payload.get("config") or {},
        )

    def path(self, stage: str) -> str:
        return fs.join(self.run_dir, *stage.split("/"))

    def manifest(self, stage: str) -> Manifest | None:
        if stage not in self._manifests:
            self._manifests[stage] = read_manifest(self.path(stage))
        return self._manifests[stage]

    def finished(self) -> list[str]:
        return [s for s in self.stages if self.manifest(s) is not None]

    def with_side_table(self, subdir: str) -> str | None:
        """The last finished stage holding `subdir` (e.g. `_duplicates`), whatever the stage is called."""
        for stage in reversed(self.finished()):
            if fs.exists(fs.join(self.path(stage), subdir)):
                return stage
        return None

    def iteration_stages(self, kind: StageKind) -> list[tuple[int, str]]:
        """Finished `iter-NN/` stages of `kind` as (iteration, stage), by iteration."""
        found = []
        for stage in self.finished():
            iteration = iteration_of(stage)
            if iteration is not None and kind_of(stage) is kind:
                found.append((iteration, stage))
        return sorted(found)

    def relative(self, stage_or_path: str) -> str:
        """A stage name relative to the run, from either that name or the stage's full path."""
        prefix = self.run_dir.rstrip("/") + "/"
        if stage_or_path.startswith(prefix):
            return stage_or_path[len(prefix) :].strip("/")
        if fs.is_local(stage_or_path) and fs.is_local(self.run_dir):
            path, root = Path(fs.local_path(stage_or_path)), Path(fs.local_path(self.run_dir))
            if path.is_absolute():
                try:
                    return path.resolve().relative_to(root.resolve()).as_posix()
                except ValueError:
                    pass
        return stage_or_path.strip("/")

    def documents_stages(self) -> list[str]:
        """Finished stages whose rows are documents (they have doc_id and text), in run order."""
        import pyarrow.dataset as ds

        out = []
        for stage in self.finished():
            if not fs.is_local(self.run_dir):
                out.append(stage)
                continue
            try:
                names = ds.dataset(fs.local_path(self.path(stage)), format="parquet", ignore_prefixes=[".", "_"]).schema
            except (OSError, ValueError):
                continue
            if "doc_id" in names.names and "text" in names.names:
                out.append(stage)
        return out

    def resolve_final_stage(self) -> str | None:
        """run.json's final stage if it finished, else the last finished documents stage."""
        if self.final_stage and self.manifest(self.final_stage) is not None:
            return self.final_stage
        candidates = self.documents_stages()
        return candidates[-1] if candidates else None
