"""Where curate keeps derived, rebuildable files that outlive a run (never a run's output)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "CURATE_CACHE_DIR"


def cache_root() -> Path:
    """$CURATE_CACHE_DIR, else curate/ under the XDG cache directory (~/.cache by default)."""
    if configured := os.environ.get(CACHE_ENV):
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "curate"
