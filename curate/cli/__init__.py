"""The `curate` command line. Its package init runs before any verb's imports, so it sets what must precede numpy."""

from curate.runners.blas import use_one_blas_thread

use_one_blas_thread()
