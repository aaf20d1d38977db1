"""LanguageStep: fills `language` and `language_score` with py3langid (model ships in the wheel).

py3langid covers 97 languages including Chinese and Japanese, needs no download at run time, and
classifies the first few thousand characters of a page in well under a millisecond.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from curate.step import Step, worker_cached
from curate.steps.language_model import load_identifier

SAMPLE_CHARS = 2000


class LanguageStep(Step):
    name = "language_py3langid_v1"
    error_reason = "language_error"

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        identifier = worker_cached("py3langid", load_identifier)
        samples = [(text or "")[:SAMPLE_CHARS] for text in batch.column("text").to_pylist()]
        with_text = [index for index, sample in enumerate(samples) if sample.strip()]
        languages: list[str | None] = [None] * len(samples)
        scores: list[float | None] = [None] * len(samples)
        for index, (language, score) in zip(
            with_text, identifier.classify_many([samples[index] for index in with_text]), strict=True
        ):
            languages[index], scores[index] = language, float(score)
        batch = batch.set_column(batch.schema.get_field_index("language"), "language", pa.array(languages, pa.string()))
        index = batch.schema.get_field_index("language_score")
        return batch.set_column(index, "language_score", pc.cast(pa.array(scores, pa.float64()), pa.float32()))
