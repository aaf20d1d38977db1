"""A `curate` command converts to Arrow without importing pandas, and a Spark session gets pyarrow's pandas back."""

from __future__ import annotations

from pathlib import Path

from support.fresh_python import LOCAL_INGEST, python_json, write_pages_warc


def test_a_local_ingest_command_never_imports_pandas(tmp_path: Path, shared_data: Path) -> None:
    write_pages_warc(tmp_path, shared_data)
    seen = python_json(
        LOCAL_INGEST + "import json, sys\n"
        "import pyarrow.parquet as pq\n"
        "rows = pq.read_table('run/01_extract').num_rows\n"
        "print(json.dumps({'pandas': 'pandas' in sys.modules, 'rows': rows}))",
        tmp_path,
    )
    assert seen == {"pandas": False, "rows": 3}


def test_pyarrow_takes_pandas_objects_as_arrays_again_once_asked(tmp_path: Path) -> None:
    """What a Spark session's driver needs: a pandas Categorical stays a dictionary array, not a list of strings."""
    seen = python_json(
        "import json\n"
        "from curate.runners.arrow_pandas import arrow_with_pandas, arrow_without_pandas\n"
        "arrow_without_pandas()\n"
        "import pandas as pd, pyarrow as pa\n"
        "hidden = str(pa.array(pd.Categorical(['a', 'b'])).type)\n"
        "arrow_with_pandas()\n"
        "print(json.dumps({'hidden': hidden, 'back': str(pa.array(pd.Categorical(['a', 'b'])).type)}))",
        tmp_path,
    )
    assert seen == {"hidden": "string", "back": "dictionary<values=string, indices=int8, ordered=0>"}
