"""Benchmark decontamination: the DeepSeekMath n-gram rule, with an audit trail.

    loaders.py    benchmark files + field mappings (pipelines/benchmarks.yaml) -> BenchmarkText
    normalize.py  the one normalisation and tokenisation shared by index and scan, offsets back to the text
    index.py      NGramIndex: hashed n-gram windows in a sorted array, guards, one .npz file per index
    scan.py       documents -> hits (benchmark, item, field, matched text, offset), and cutting them out
    step.py       DecontaminateStep: drop or cut, plus a hits column the stage turns into a dataset

The stage that runs it over a run directory is curate.stages.decontam; the clean pages that measure false
positives are test support (tests/support/reference_pages.py).
"""

from curate.decontam.index import IndexConfig, NGramIndex
from curate.decontam.loaders import BenchmarkSpec, BenchmarkText, iter_texts, load_specs, shared_benchmarks
from curate.decontam.scan import Hit, cut, scan
from curate.decontam.step import DecontaminateStep

__all__ = [
    "BenchmarkSpec",
    "BenchmarkText",
    "DecontaminateStep",
    "Hit",
    "IndexConfig",
    "NGramIndex",
    "cut",
    "iter_texts",
    "load_specs",
    "scan",
    "shared_benchmarks",
]
