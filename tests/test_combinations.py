"""Render the covering set of combinations, train each briefly and run the rendered tests.

Every (task, model_family) pair meets every tracker, and both accelerators appear; the `matrix` nox
session runs every valid combination instead. Most rendered tests (data layer, evaluation) do not
depend on the tracker or the accelerator, so each pair runs its whole suite with one tracker and,
with the others, the tests that build a run from the tracker and trainer configs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from combinations import (
    Combination,
    covering_set,
    model_choices,
    pytest_selection,
    whole_suite_combinations,
)
from matrix import check_rendered, render_combination
from rendering import snapshot_template


@pytest.fixture(scope="session")
def template_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return snapshot_template(tmp_path_factory.mktemp("template"))


@pytest.mark.parametrize("combination", covering_set(), ids=lambda c: c.name)
def test_rendered_repo_passes_own_tests(
    combination: Combination, template_snapshot: Path, tmp_path: Path
) -> None:
    render_dir = render_combination(combination, tmp_path, template_snapshot)
    selection = pytest_selection(combination, whole_suite_combinations(covering_set()))

    outcome = check_rendered(combination, render_dir, pytest_args=selection)

    assert outcome.failed_step is None, outcome.output[-8000:]


@pytest.mark.slow
@pytest.mark.parametrize(
    "combination",
    [Combination(*choice, "csv", "cpu") for choice in model_choices()],
    ids=lambda c: c.name,
)
def test_rendered_physics_tests_pass(
    combination: Combination, template_snapshot: Path, tmp_path: Path
) -> None:
    render_dir = render_combination(combination, tmp_path, template_snapshot)

    outcome = check_rendered(combination, render_dir, pytest_args=("-m", "slow"))

    assert outcome.failed_step is None, outcome.output[-8000:]
