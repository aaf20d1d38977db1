"""The `curate` command line. Its package init runs before any verb's imports, so it sets what must precede numpy
and pyarrow's first conversion."""

from curate.runners.arrow_pandas import arrow_without_pandas
from curate.runners.blas import use_one_blas_thread

use_one_blas_thread()
arrow_without_pandas()
