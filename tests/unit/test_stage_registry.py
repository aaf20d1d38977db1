"""The stage registry: every stage has one name, its side directories, and a run(ctx, inputs, config) function."""

from __future__ import annotations

import inspect

import pytest

from curate.stage import checked_stage_path
from curate.stages import registry


@pytest.mark.parametrize("kind", registry.STAGES, ids=lambda kind: kind.key)
def test_every_stage_runs_through_the_one_contract(kind: registry.StageKind) -> None:
    parameters = list(inspect.signature(kind.runner()).parameters)
    assert parameters[:2] == ["ctx", "inputs"] and len(parameters) == 3, parameters
    for iteration in (1, 12):
        name = kind.name(iteration)
        assert checked_stage_path(name) == name
        assert registry.kind_of(name) is kind
    assert all(side.startswith("_") for side in kind.side_dirs)  # readers of a stage's rows never see them


def test_names_keys_and_order_are_unique() -> None:
    assert len({kind.key for kind in registry.STAGES}) == len(registry.STAGES)
    top_level = [kind.directory for kind in registry.STAGES if not kind.per_iteration]
    per_iteration = [kind.directory for kind in registry.STAGES if kind.per_iteration]
    assert len(set(top_level)) == len(top_level) and len(set(per_iteration)) == len(per_iteration)
    assert sorted(per_iteration) == per_iteration  # numbered in the order an iteration runs them
    assert registry.iteration_dir(3) == "iter-03"
    # A stage named by hand: by its name's ending, or nobody's.
    assert registry.kind_of("iter-02/my_own_select") is registry.SELECT
    assert registry.kind_of("04_math_score") is registry.SCORE and registry.kind_of("dedup") is registry.NEAR_DEDUP
    assert registry.kind_of("iter-02/notes") is None
