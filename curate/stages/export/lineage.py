"""Which stages of a run feed the export: the source stage, the iterations that selected, dedup and decontamination."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from curate.errors import CurateError
from curate.run_layout import RunLayout
from curate.stages import registry
from curate.stages.registry import CONTAMINATION_DIR, DUPLICATES_DIR

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class Lineage:
    """The stages the exported columns come from (any may be absent from a run)."""

    source: str
    selects: tuple[tuple[int, str], ...]
    dedup: str | None
    decontamination: str | None

    def stages(self) -> list[str]:
        found = [self.source, *(stage for _, stage in self.selects)]
        found += [s for s in (self.dedup, self.decontamination) if s is not None]
        return list(dict.fromkeys(found))


def find_lineage(layout: RunLayout, source_stage: str | None) -> Lineage:
    if source_stage is None:
        declared = layout.final_stage
        if declared is not None and layout.manifest(declared) is None:
            raise CurateError(
                f"the run's final stage {declared} has not finished: finish the run, or export another stage with --stage"
            )
        source_stage = layout.resolve_final_stage()
        if source_stage is None:
            raise CurateError(f"{layout.run_dir} has no finished stage of documents to export: run the pipeline first")
    else:
        source_stage = layout.relative(source_stage)
    if layout.manifest(source_stage) is None:
        raise CurateError(f"stage {source_stage} has not finished in {layout.run_dir}: run it first (or check --stage)")
    return Lineage(
        source=source_stage,
        selects=tuple(layout.iteration_stages(registry.SELECT)),
        dedup=layout.with_side_table(DUPLICATES_DIR),
        decontamination=layout.with_side_table(CONTAMINATION_DIR),
    )
