"""Soak, light form: every real HTML page of the shared data extracted three times in one process, shuffled
differently each pass, with no extraction error and the same output every time. The heavy form (20+ passes,
RSS per pass) is `benchmarks/soak.py`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from support.soak import real_html_inputs, soak_pass

PASSES = 3
SEED = 20261205


def test_every_real_page_extracts_the_same_way_every_pass(shared_data: Path) -> None:
    inputs = real_html_inputs(shared_data)
    from_html = sum(item.name.startswith("html/") for item in inputs)
    assert from_html == 813 and len(inputs) - from_html >= 180, (from_html, len(inputs))
    first = dict(soak_pass(inputs, SEED, 0))
    assert len(first) == len(inputs)  # names are unique, so no page hid behind another
    reasons = Counter(outcome[3] for outcome in first.values())
    errors = {name: outcome[4] for name, outcome in first.items() if outcome[3] == "extract_error"}
    assert not errors, errors
    assert "too_deep" not in reasons  # the depth limit is for hostile pages, far from any real one
    assert reasons[None] >= 900, reasons  # most real pages give text; the rest are named drops
    for pass_index in range(1, PASSES):
        again = dict(soak_pass(inputs, SEED, pass_index))
        changed = sorted(name for name in first if again[name] != first[name])
        assert not changed, f"pass {pass_index} changed {len(changed)} pages, e.g. {changed[:3]}"
