"""MathScoreStep: adds `math_score` (P(math) from the fastText classifier) and `model_id`; drops nothing.

Scoring and selecting are separate (STYLE: score, then select): each iteration of the DeepSeekMath loop
re-ranks the same documents with a new model, so scores are kept and thresholds are applied later.

The model file reaches executors through `SparkContext.addFile` (see `ship`); each Python worker loads it
once (`worker_cached`, keyed by the content-hash model id) and reuses it for every task it runs. A 2 GB
default-bucket model loaded per task, or per row group, would dominate the run (NOTES-deps P7).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa

from curate.classify.model import load_model, model_info, score_texts
from curate.schema import SCORE_FIELDS
from curate.step import Step, worker_cached

if TYPE_CHECKING:
    from pyspark import SparkContext

SCORE_NAMES = [f.name for f in SCORE_FIELDS]


class MathScoreStep(Step):
    name: ClassVar[str] = "fasttext_math_v1"
    error_reason = "score_error"
    _unpicklable = ("_model",)

    def __init__(self, model_path: str | Path, *, text_column: str = "text") -> None:
        super().__init__()
        info = model_info(model_path)  # on the driver: fails before any Spark job if the model is missing
        self.model_path = str(info.path)
        self.model_id = info.model_id
        self.max_chars = info.max_chars
        self.text_column = text_column
        self._spark_file: str | None = None
        self._model: Any = None

    def ship(self, spark_context: SparkContext) -> MathScoreStep:
        """Register the model file with Spark so executors on other machines get a local copy.

        The file name is its content hash, so a name already registered is this very file: adding it
        twice would make Spark refuse (same name, different path) without anything to gain.
        """
        file_name = Path(self.model_path).name
        registered = {uri.rsplit("/", 1)[-1] for uri in spark_context.listFiles}
        if file_name not in registered:
            spark_context.addFile(self.model_path)
        self._spark_file = file_name
        return self

    def _resolve_path(self) -> str:
        if self._spark_file is None:
            return self.model_path
        from pyspark import SparkFiles

        return SparkFiles.get(self._spark_file)

    def setup(self) -> None:
        self._model = worker_cached(f"fasttext:{self.model_id}", lambda: load_model(self._resolve_path()))

    def output_schema(self, input_schema: pa.Schema) -> pa.Schema:
        schema = input_schema
        for field in SCORE_FIELDS:
            index = schema.get_field_index(field.name)
            # Re-scoring with a new model replaces the previous iteration's columns in place.
            schema = schema.set(index, field) if index >= 0 else schema.append(field)
        return schema

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        texts = batch.column(self.text_column).to_pylist()
        scores = score_texts(self._model, texts, self.max_chars)
        columns = {
            "math_score": pa.array(scores, pa.float32()),
            "model_id": pa.array([self.model_id] * batch.num_rows, pa.string()),
        }
        for field in SCORE_FIELDS:
            index = batch.schema.get_field_index(field.name)
            if index >= 0:
                batch = batch.set_column(index, field, columns[field.name])
            else:
                batch = batch.append_column(field, columns[field.name])
        return batch

    def config(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "max_chars": self.max_chars, "text_column": self.text_column}
