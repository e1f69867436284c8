"""Render the covering set of combinations, train each briefly and run the rendered tests.

Every (task, model_family) pair meets every tracker, and both accelerators appear; the `matrix` nox
session runs every valid combination instead. Most rendered tests (data layer, evaluation) do not
depend on the tracker, so each pair runs its whole suite with one tracker and, with the others,
the tests that do: training, evaluation and logging through the tracker.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from combinations import TRACKERS, Combination, covering_set
from matrix import check_rendered, render_combination
from rendering import snapshot_template

TRACKER_DEPENDENT_TESTS = ("tests/test_train.py", "tests/test_evaluation_tracking.py")


def whole_suite_tracker(combination: Combination) -> str:
    """Return the tracker with which the combination's (task, model_family) runs every test."""
    pairs = sorted({(c.task, c.use_gnn, c.model_family) for c in covering_set()})
    index = pairs.index((combination.task, combination.use_gnn, combination.model_family))
    return TRACKERS[index % len(TRACKERS)]


@pytest.fixture(scope="session")
def template_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return snapshot_template(tmp_path_factory.mktemp("template"))


@pytest.mark.parametrize("combination", covering_set(), ids=lambda c: c.name)
def test_rendered_repo_passes_own_tests(
    combination: Combination, template_snapshot: Path, tmp_path: Path
) -> None:
    render_dir = render_combination(combination, tmp_path, template_snapshot)
    whole_suite = combination.tracker == whole_suite_tracker(combination)
    selection = () if whole_suite else TRACKER_DEPENDENT_TESTS

    outcome = check_rendered(combination, render_dir, pytest_args=("-m", "not slow", *selection))

    assert outcome.failed_step is None, outcome.output[-8000:]


@pytest.mark.slow
@pytest.mark.parametrize(
    "combination",
    [
        Combination("classification", False, "mlp", "csv", "cpu"),
        Combination("regression", False, "mlp", "csv", "cpu"),
    ],
    ids=lambda c: c.name,
)
def test_rendered_physics_tests_pass(
    combination: Combination, template_snapshot: Path, tmp_path: Path
) -> None:
    render_dir = render_combination(combination, tmp_path, template_snapshot)

    outcome = check_rendered(combination, render_dir, pytest_args=("-m", "slow"))

    assert outcome.failed_step is None, outcome.output[-8000:]
