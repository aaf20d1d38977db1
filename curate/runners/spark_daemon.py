"""pyspark's worker daemon, with the modules every curate task imports loaded once before it forks workers.

Each Python worker Spark starts is forked from this daemon. With pyspark's own daemon, each imported
pyarrow, numpy, pandas, the parsers and curate's steps after the fork: 0.4-0.5 s of CPU per worker, and
its own copy of their pages. Imported here, before the first fork, they are shared copy-on-write.

pyspark imports its worker module only after the fork because some libraries start threads on import. Of
those loaded here, numpy's BLAS pool is kept from starting (one thread: a Python worker per core already
fills the cores) and pyarrow's jemalloc background thread is fork-aware (jemalloc's own atfork handlers).
Any import that fails is left to the worker, which then imports (and reports) it as before.

Spark also puts its own copies of pyspark and py4j, as zips, first on the workers' path. Imported from a
zip, pyspark is compiled from source every time (no bytecode cache: 0.47 s of CPU against 0.10 s from the
installed package), and each worker's first task re-reads the zip's directory of 1,485 entries when
pyspark invalidates the import caches. When those zips are the installed package's own (pip's layout,
`pyspark/python/lib/*.zip` inside the package this interpreter imports), the installed one is used.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import sys
from pathlib import Path

from curate.runners.blas import use_one_blas_thread

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


def prefer_installed_pyspark() -> None:
    """Drop Spark's pyspark and py4j zips from the path when they ship inside the installed pyspark."""
    zips = [
        entry for entry in sys.path if entry.endswith(".zip") and Path(entry).parent.parts[-2:] == ("python", "lib")
    ]
    if not zips:
        return
    rest = [entry for entry in sys.path if entry not in zips]
    specs = [importlib.machinery.PathFinder.find_spec(name, rest) for name in ("pyspark", "py4j")]
    if any(spec is None or spec.origin is None for spec in specs):
        return  # a Spark distribution's python/lib: those zips are the only copy
    package = Path(specs[0].origin).parent  # type: ignore[union-attr, arg-type]
    if all(Path(entry).parents[2] == package for entry in zips):
        sys.path[:] = rest
        for entry in zips:
            sys.path_importer_cache.pop(entry, None)


def preload() -> None:
    use_one_blas_thread()
    for module in PRELOADED:
        with contextlib.suppress(Exception):
            importlib.import_module(module)


if __name__ == "__main__":
    prefer_installed_pyspark()
    preload()
    import gc

    # The preloaded objects move to a generation the collector never scans, so a worker's collections do not
    # write to (and so copy) the pages it shares with the daemon.
    gc.freeze()
    from pyspark.daemon import manager

    manager()
