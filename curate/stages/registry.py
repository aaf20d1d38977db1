"""Every stage of a run: its directory name, where it sits, its side datasets and the function that runs it.

The one place a stage's name is written. `curate run` (pipeline.py) runs these, the CLI takes its `--name`
defaults from them, and the report and export find side datasets through them. Adding a stage is one entry
here plus one `run(ctx, inputs, config) -> Manifest` function (see docs/architecture.md).

Names are importable without pyspark: the run functions are looked up only when `runner()` is called.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from curate.manifest import Manifest
    from curate.stage import Inputs, RunContext

# Side datasets: directories inside a stage that readers of the stage's rows never see (the leading `_`).
REJECTED_DIR = "_rejected"  # every stage: dropped rows with drop_reason / drop_detail
DUPLICATES_DIR = "_duplicates"
SIGNATURES_DIR = "_signatures"
RANKING_DIR = "_ranking"
PREFIXES_DIR = "_prefixes"
SAMPLES_DIR = "_samples"
UNCOLLECTED_DIR = "_uncollected"
CONTAMINATION_DIR = "_contamination"

ITERATION_PREFIX = "iter-"


def iteration_dir(iteration: int) -> str:
    return f"{ITERATION_PREFIX}{iteration:02d}"


@dataclass(frozen=True)
class StageKind:
    """One kind of stage. `directory` is its name in the run (inside `iter-NN/` when `per_iteration`)."""

    key: str
    directory: str
    summary: str
    module: str
    function: str
    per_iteration: bool = False
    side_dirs: tuple[str, ...] = ()

    def name(self, iteration: int | None = None) -> str:
        """The stage's path relative to the run: `03_near_dedup`, `iter-02/02_math_score`."""
        if not self.per_iteration:
            return self.directory
        return f"{iteration_dir(iteration or 1)}/{self.directory}"

    def runner(self) -> Any:
        """The stage's `run(ctx, inputs, config) -> Manifest` function."""
        return getattr(importlib.import_module(self.module), self.function)

    def run(self, ctx: RunContext, inputs: Inputs, config: Any) -> Manifest:
        manifest: Manifest = self.runner()(ctx, inputs, config)
        return manifest


EXTRACT = StageKind(
    "extract", "01_extract", "WARC records -> documents (decode, main text with math, language)",
    "curate.stages.ingest", "run_extract",
)  # fmt: skip
URL_DEDUP = StageKind(
    "url_dedup", "02_url_dedup", "one document per normalised URL (latest capture)",
    "curate.stages.ingest", "run_url_dedup",
)  # fmt: skip
NEAR_DEDUP = StageKind(
    "near_dedup", "03_near_dedup", "MinHash LSH near-duplicate removal",
    "curate.stages.dedup.stage", "run_near_dedup", side_dirs=(DUPLICATES_DIR, SIGNATURES_DIR),
)  # fmt: skip
TRAIN = StageKind(
    "train", "01_train", "fastText on the seed (+ earlier expansions) vs random pages",
    "curate.stages.train", "run_train", per_iteration=True,
)  # fmt: skip
SCORE = StageKind(
    "score", "02_math_score", "every page scored (re-ranked each iteration), tokens counted",
    "curate.stages.classify", "run_score", per_iteration=True,
)  # fmt: skip
SELECT = StageKind(
    "select", "03_math_select", "threshold and/or token budget",
    "curate.stages.classify", "run_select", per_iteration=True, side_dirs=(RANKING_DIR,),
)  # fmt: skip
DOMAINS = StageKind(
    "domains", "04_domains", "per-domain collected fraction, flagged domains, prefix suggestions",
    "curate.stages.domains", "run_domains", per_iteration=True, side_dirs=(PREFIXES_DIR, SAMPLES_DIR, UNCOLLECTED_DIR),
)  # fmt: skip
SEED = StageKind(
    "seed", "05_seed", "uncollected pages under annotated math patterns -> next seed",
    "curate.stages.seed", "run_seed_expansion", per_iteration=True,
)  # fmt: skip
DECONTAMINATE = StageKind(
    "decontaminate", "90_decontaminate", "benchmark n-gram removal with an audit trail",
    "curate.stages.decontam", "run_decontaminate", side_dirs=(CONTAMINATION_DIR,),
)  # fmt: skip

# In run order. Export is not a stage of the run directory: it writes outside it (`--out`), see stages/export.
STAGES: tuple[StageKind, ...] = (EXTRACT, URL_DEDUP, NEAR_DEDUP, TRAIN, SCORE, SELECT, DOMAINS, SEED, DECONTAMINATE)
EXPORT_DIR = "export"  # the default export location inside the run directory
# Top-level stages numbered from here on run after the iterations.
AFTER_ITERATIONS = 90


# Names of stages run by hand under an earlier version's names (`curate dedup --name dedup`).
_ALIASES = {"ingest": EXTRACT, "dedup": NEAR_DEDUP}
_NUMBER = re.compile(r"^\d+_")


def kind_of(stage: str) -> StageKind | None:
    """The kind of a stage path: `iter-02/03_math_select` -> SELECT by its registered name; a stage named by
    hand (`--name my_select`) by its name without its number, or by that name's ending; None if neither."""
    directory = stage.rsplit("/", 1)[-1]
    in_iteration = "/" in stage and stage.split("/", 1)[0].startswith(ITERATION_PREFIX)
    for kind in STAGES:
        if kind.directory == directory and kind.per_iteration == in_iteration:
            return kind
    name = _NUMBER.sub("", directory)
    if name in _ALIASES:
        return _ALIASES[name]
    return next((kind for kind in STAGES if name == kind.key or name.endswith("_" + kind.key)), None)
