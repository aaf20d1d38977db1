"""Whether pyarrow looks for pandas: not in a `curate` command until a Spark session starts.

pyarrow decides once per process, at the first conversion of a Python list (`pa.array`, `from_pylist`,
`from_pydict`), whether pandas is there, and imports it to find out: 0.12 s of CPU at the start of every
command (a fifth of a one-record `curate ingest --local-runner`), for a library only pyspark uses with Arrow.
`arrow_without_pandas` has pyarrow decide now, with pandas hidden, so that lists convert without it.
`arrow_with_pandas` undoes that where pandas objects may reach pyarrow: pyarrow imports pandas at its
first pandas-only call and uses it from then on.
"""

from __future__ import annotations

import sys
from importlib.machinery import ModuleSpec
from typing import Any


class _PandasHidden:
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("pandas is hidden while pyarrow decides whether to use it")
        return None


def arrow_without_pandas() -> None:
    """Call before the process's first list conversion; once pandas is imported, it changes nothing."""
    if "pandas" in sys.modules:
        return
    import pyarrow as pa

    hidden = _PandasHidden()
    sys.meta_path.insert(0, hidden)
    try:
        pa.array([])
    finally:
        sys.meta_path.remove(hidden)


def arrow_with_pandas() -> None:
    import pyarrow as pa

    pa.array([]).to_pandas()  # a pandas-only call: pyarrow imports pandas and takes it into account again
