"""`_manifest.json`: what a stage did, written last so its presence means the stage finished.

A stage's *fingerprint* hashes its resolved config, its step names (versions included), the source of
the code that does the work, and its inputs' fingerprints. It is independent of timings, so re-running an
unchanged upstream stage does not invalidate everything below it, and the same input and config always
give the same fingerprint. Raw input files (WARCs, seed corpora, benchmark files) are fingerprinted by
content, so an in-place edit that keeps a file's size still re-runs the stages it feeds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from curate import __version__

log = logging.getLogger(__name__)

MANIFEST_NAME = "_manifest.json"


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(config: dict[str, Any], steps: list[str]) -> str:
    return hashlib.sha256(canonical_json({"config": config, "steps": steps}).encode()).hexdigest()[:16]


def fingerprint(config_digest: str, input_fingerprints: list[str], code: dict[str, str] | None = None) -> str:
    parts: list[Any] = [config_digest, sorted(input_fingerprints)]
    if code:
        parts.append(code)
    return hashlib.sha256(canonical_json(parts).encode()).hexdigest()[:16]


@dataclass
class Manifest:
    stage: str
    fingerprint: str
    config_hash: str
    config: dict[str, Any]
    steps: list[str]
    inputs: list[dict[str, str]]
    rows_in: int
    rows_out: int
    drops: dict[str, int]
    runner: str
    wall_seconds: float
    created: str
    curate_version: str = __version__
    problems: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    # Digest of the source of each piece of code the stage ran (see curate.fingerprints.code_versions).
    code: dict[str, str] = field(default_factory=dict)
    status: str = "complete"

    @property
    def balanced(self) -> bool:
        """records in = records out + records dropped, the invariant every stage reports."""
        return self.rows_in == self.rows_out + sum(self.drops.values())

    def to_json(self) -> str:
        payload = asdict(self)
        payload["balanced"] = self.balanced
        return json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n"

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> Manifest:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in payload.items() if k in known})


def read_manifest(stage_dir: str | os.PathLike[str]) -> Manifest | None:
    """The manifest of a finished stage (local or remote), or None when the stage has not finished.

    The one reader: the stage runner's skip check, the run layout, the report and export all call it.
    """
    from curate.io import fs

    path = fs.join(os.fspath(stage_dir), MANIFEST_NAME)
    text = fs.read_text(path)
    if text is None:
        return None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        # A half-written manifest cannot happen (it is written before the atomic rename), so this is a
        # hand-edited or foreign file: treat the stage as unfinished rather than trusting it.
        log.warning("ignoring unreadable manifest %s: %s", path, exc)
        return None
    if not isinstance(payload, dict) or payload.get("status") != "complete":
        return None
    return Manifest.from_dict(payload)


def write_manifest(stage_dir: str | os.PathLike[str], manifest: Manifest) -> None:
    from curate.io import fs

    fs.write_text(fs.join(os.fspath(stage_dir), MANIFEST_NAME), manifest.to_json())
