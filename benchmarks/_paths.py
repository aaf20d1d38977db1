"""The one place the benchmark scripts learn where the checkout is.

Imported first (`import _paths`) so that `from support.x import ...` finds the test support in tests/support/
(it is not part of the installed product). `tests/` itself goes on the path rather than the checkout root
because a dependency installs a top-level package named `tests`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CURATE_SHARED_DATA", ROOT.parent / "shared" / "data"))

if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))
