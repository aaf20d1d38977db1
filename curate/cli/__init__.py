"""The `curate` command line. Its package init runs before any verb's imports, so it sets what must precede the
first import of numpy and pyarrow, and pyarrow's first conversion."""

from curate.runners.arrow_pandas import arrow_without_pandas
from curate.runners.blas import use_one_blas_thread
from curate.runners.huge_pages import without_transparent_huge_pages

use_one_blas_thread()
without_transparent_huge_pages()
arrow_without_pandas()
