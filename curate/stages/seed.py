"""Seed expansion: uncollected pages under URL patterns a person annotated as math join the next seed.

DeepSeekMath (section 2.1): "webpages linked to these URLs, yet uncollected, will be added to the seed
corpus". Pages under a not-math pattern never join, even when a broader math pattern covers them: the
annotation matcher resolves the longest pattern first.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from curate.annotate.patterns import PatternMatcher
from curate.annotate.store import MATH, NOT_MATH
from curate.manifest import Manifest, canonical_json
from curate.runners.spark import map_steps
from curate.stage import Inputs, RunContext, Stage
from curate.stage_rows import count_rows, write_spark_output
from curate.stages.classify import with_collected_flag
from curate.step import Step, mark_dropped

SEED_STEP = "seed_expansion_v1"


def under_math_pattern(labels: pa.Array) -> pa.Array:
    """Where the matcher's label makes an uncollected page join the seed: exactly "math" (not-math or none stays)."""
    return pc.equal(pc.fill_null(labels, ""), MATH)


def seed_joining(matcher: PatternMatcher, uncollected_urls: pa.Array | pa.ChunkedArray) -> int:
    """How many of these uncollected pages seed expansion would add under `matcher`'s labels.

    The review calls this with the same matcher class and the same test as `SeedMatchStep`, so the count it shows
    before a label is saved is what the next seed expansion does with that label.
    """
    return int(pc.sum(under_math_pattern(matcher.label_array(uncollected_urls))).as_py() or 0)


class SeedMatchStep(Step):
    """Keeps rows whose URL falls under a math pattern and that were not collected (`collected` column)."""

    name = SEED_STEP

    def __init__(self, labels: dict[str, str]) -> None:
        super().__init__()
        self.labels = labels
        self._matcher: Any = None
        self._unpicklable = ("_matcher",)

    def setup(self) -> None:
        self._matcher = PatternMatcher(self.labels)

    def output_schema(self, input_schema: pa.Schema) -> pa.Schema:
        return input_schema.remove(input_schema.get_field_index("collected"))

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        labels = self._matcher.label_array(batch.column("url"))
        collected = pc.fill_null(batch.column("collected"), False)
        batch = batch.drop_columns(["collected"])
        batch = mark_dropped(batch, collected, "already_collected")
        batch = mark_dropped(batch, pc.equal(pc.fill_null(labels, ""), NOT_MATH), "not_math_pattern")
        return mark_dropped(batch, pc.invert(under_math_pattern(labels)), "no_math_pattern")


def labels_digest(labels: dict[str, str]) -> str:
    return hashlib.sha256(canonical_json(labels).encode()).hexdigest()[:16]


def run_seed_expansion(ctx: RunContext, inputs: Inputs, labels: dict[str, str]) -> Manifest:
    """`inputs.stages`: the iteration's scored and select stages; `labels`: {URL pattern: math | not-math}."""
    scored_stage, selected_stage = inputs.stages
    with Stage(
        ctx, inputs, config={"annotations": labels_digest(labels), "patterns": len(labels)}, steps=[SEED_STEP]
    ) as stage:
        if not stage.pending:
            return stage.result
        spark = ctx.spark
        joined = with_collected_flag(spark, scored_stage, selected_stage)
        step = SeedMatchStep(labels)
        out = map_steps(joined, [step])
        counts = write_spark_output(stage, out)
        rows_in = count_rows(ctx, scored_stage)
        stage.finish(rows_in=rows_in, rows_out=counts.rows_out, drops=counts.drops, extra={"patterns": len(labels)})
    return stage.result
