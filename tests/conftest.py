"""Shared fixtures: the real data under ../shared/data and one local-mode Spark session for the suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CURATE_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real test data not found at {SHARED_DATA} (set CURATE_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def spark():
    """One local[2] session for the whole run: a JVM start costs ~6-10 s."""
    from curate.runners.spark import build_session

    session = build_session("local[2]", app_name="curate-tests", driver_memory="2g", shuffle_partitions=4)
    yield session
    session.stop()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite tests/golden/ from this run (see tests/e2e/test_golden.py)",
    )
