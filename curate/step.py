"""The Step interface: an Arrow batch in, an Arrow batch out, with lazy per-worker setup.

The same `run_steps` is the body of Spark's `mapInArrow` and of the local loop over Parquet batches, so
a step never knows which runner it is in.

Drops: a step never deletes rows. It sets `drop_reason` (and optionally `drop_detail`) on the rows it
rejects; `run_steps` takes those rows out of the stream before the next step and emits them at the end
of the chain with the remaining columns null. The stage writer then splits kept rows from rejected
ones, so every drop is counted from materialised data and the dropped ids can be recovered.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.compute as pc

from curate.errors import describe_exception
from curate.schema import DROP_DETAIL, DROP_REASON, with_drop_fields

_worker_cache: dict[str, Any] = {}
_worker_cache_lock = threading.Lock()


def worker_cached(key: str, factory: Callable[[], Any]) -> Any:
    """One object per Python worker process (e.g. a loaded model), shared by all tasks it runs.

    Spark deserialises a task's closure anew for every task, so state kept on a Step instance lives for
    one partition only; a model that takes seconds to load belongs here instead.
    """
    with _worker_cache_lock:
        if key not in _worker_cache:
            _worker_cache[key] = factory()
        return _worker_cache[key]


class Step:
    """A row-local transformation. Subclasses set `name` (versioned) and implement `process`.

    `name` is recorded in manifests: bump its version suffix when the output for the same input changes.
    """

    name: ClassVar[str] = "step_v0"
    # The drop reason of a row whose processing raised (see `process_contained`).
    error_reason: ClassVar[str] = "step_error"

    def __init__(self) -> None:
        self._ready = False

    def setup(self) -> None:
        """Load models or build indexes. Called once per worker before the first batch."""

    def output_schema(self, input_schema: pa.Schema) -> pa.Schema:
        """The schema of `process`' output, without the drop fields (the runner adds them)."""
        return input_schema

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        raise NotImplementedError

    def apply(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """Stream form; override for steps whose output rows are not one batch per input batch."""
        self.ensure_setup()
        for batch in batches:
            yield from self.process_contained(batch)

    def process_contained(self, batch: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
        """`process`, with any record whose processing raises dropped as `error_reason` instead of the job.

        A batch that raises is processed again row by row, so only the rows that raise on their own are
        dropped; their detail names the exception. Crawled content reaches every step, and one page must
        never end a job of millions.
        """
        from curate.errors import CurateError

        try:
            yield self.process(batch)
            return
        except CurateError:
            raise  # a configuration or input mistake concerns the job, not one record
        except Exception:
            if batch.num_rows == 0:
                raise
        schema = with_drop_fields(self.output_schema(batch.schema))
        for index in range(batch.num_rows):
            row = batch.slice(index, 1)
            try:
                yield self.process(row)
            except Exception as exc:
                failed = conform(row, schema)
                yield mark_dropped(failed, pa.array([True]), self.error_reason, pa.array([describe_exception(exc)]))

    def ensure_setup(self) -> None:
        if not getattr(self, "_ready", False):
            self.setup()
            self._ready = True

    def config(self) -> dict[str, Any]:
        """The parameters that change this step's output; hashed into the stage manifest."""
        return {}

    def __getstate__(self) -> dict[str, Any]:
        # Ship the recipe, not the loaded state: executors run setup() themselves.
        state = self.__dict__.copy()
        state["_ready"] = False
        for key in getattr(self, "_unpicklable", ()):
            state[key] = None
        return state


def final_schema(steps: list[Step], input_schema: pa.Schema) -> pa.Schema:
    schema = input_schema
    for step in steps:
        schema = step.output_schema(schema)
    return with_drop_fields(schema)


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Reorder/cast `batch` to `schema`; columns it lacks become nulls (a dropped row never got them)."""
    columns = []
    for field in schema:
        index = batch.schema.get_field_index(field.name)
        if index < 0:
            columns.append(pa.nulls(batch.num_rows, field.type))
        else:
            column = batch.column(index)
            columns.append(column if column.type == field.type else column.cast(field.type))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _split_dropped(batch: pa.RecordBatch) -> tuple[pa.RecordBatch, pa.RecordBatch | None]:
    index = batch.schema.get_field_index(DROP_REASON)
    if index < 0:
        return batch, None
    drop_names = [name for name in (DROP_REASON, DROP_DETAIL) if name in batch.schema.names]
    dropped_mask = pc.is_valid(batch.column(index))
    # All kept or all dropped (readers batch their drops apart): no filter, so no copy of the columns.
    if not pc.any(dropped_mask).as_py():
        return batch.drop_columns(drop_names), None
    if pc.all(dropped_mask).as_py():
        return batch.slice(0, 0).drop_columns(drop_names), batch
    return batch.filter(pc.invert(dropped_mask)).drop_columns(drop_names), batch.filter(dropped_mask)


def run_steps(
    steps: list[Step], batches: Iterable[pa.RecordBatch], input_schema: pa.Schema
) -> Iterator[pa.RecordBatch]:
    """Chain `steps` over `batches`; every output batch has `final_schema(steps, input_schema)`."""
    out_schema = final_schema(steps, input_schema)
    dropped_batches: list[pa.RecordBatch] = []

    def strip_drops(stream: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in stream:
            kept, dropped = _split_dropped(batch)
            if dropped is not None and dropped.num_rows:
                dropped_batches.append(conform(dropped, out_schema))
            if kept.num_rows:
                yield kept

    stream: Iterable[pa.RecordBatch] = strip_drops(batches)
    for step in steps:
        stream = strip_drops(step.apply(stream))
    for batch in stream:
        yield conform(batch, out_schema)
        # Emit rejects as they accumulate so a long partition does not hold them all in memory.
        while dropped_batches:
            yield dropped_batches.pop(0)
    while dropped_batches:
        yield dropped_batches.pop(0)


def mark_dropped(batch: pa.RecordBatch, mask: pa.Array, reason: str, detail: pa.Array | None = None) -> pa.RecordBatch:
    """Set `drop_reason` to `reason` where `mask` is true, keeping any earlier reason."""
    reasons = batch.column(DROP_REASON) if DROP_REASON in batch.schema.names else pa.nulls(batch.num_rows, pa.string())
    details = batch.column(DROP_DETAIL) if DROP_DETAIL in batch.schema.names else pa.nulls(batch.num_rows, pa.string())
    new_reasons = pc.if_else(pc.and_(mask, pc.is_null(reasons)), pa.scalar(reason), reasons)
    if detail is not None:
        details = pc.if_else(pc.and_(mask, pc.is_null(details)), detail, details)
    batch = batch.drop_columns([n for n in (DROP_REASON, DROP_DETAIL) if n in batch.schema.names])
    batch = batch.append_column(pa.field(DROP_REASON, pa.string()), new_reasons)
    return batch.append_column(pa.field(DROP_DETAIL, pa.string()), details)
