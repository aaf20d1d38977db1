"""One BLAS thread in curate's processes.

Their matrix products are small (language id multiplies one page's features by a table of 97 languages), so a
pool of BLAS threads adds nothing, and OpenBLAS's pool spins between calls: 9 % of a one-record command's CPU, and
1 % of a 2,400-record one. Spark's Python workers run one per core already.
"""

from __future__ import annotations

import os

BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def use_one_blas_thread() -> None:
    """Takes effect only before numpy is first imported; a value already set in the environment is kept."""
    for name in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(name, "1")
