"""pyspark's worker daemon, with the modules every curate task imports loaded once before it forks workers.

Each Python worker Spark starts is forked from this daemon. With pyspark's own daemon, each imported
pyarrow, numpy, pandas, the parsers and curate's steps after the fork: 0.4-0.5 s of CPU per worker, and
its own copy of their pages. Imported here, before the first fork, they are shared copy-on-write.

pyspark imports its worker module only after the fork because some libraries start threads on import. Of
those loaded here, numpy's BLAS pool is kept from starting (one thread: a Python worker per core already
fills the cores) and pyarrow's jemalloc background thread is fork-aware (jemalloc's own atfork handlers).
Any import that fails is left to the worker, which then imports (and reports) it as before.
"""

from __future__ import annotations

import contextlib
import importlib
import os

PRELOADED = (
    "numpy",
    "pyarrow",
    "pyarrow.compute",
    "pandas",
    "pyspark.worker",
    "pyspark.sql.pandas.serializers",
    "curate.step",
    "curate.steps.minhash",
    "curate.steps.read_warc",
    "curate.steps.extract",
    "curate.steps.language",
    "curate.steps.urls",
    "curate.extraction.record",
)


def preload() -> None:
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    for module in PRELOADED:
        with contextlib.suppress(Exception):
            importlib.import_module(module)


if __name__ == "__main__":
    preload()
    from pyspark.daemon import manager

    manager()
