"""Render the covering set of combinations and run each rendered repo's own tests.

Every (task, model_family) pair meets every tracker, and both accelerators appear; the `matrix` nox
session runs every valid combination instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from combinations import Combination, covering_set
from matrix import check_rendered, render_combination


@pytest.mark.parametrize("combination", covering_set(), ids=lambda c: c.name)
def test_rendered_repo_passes_own_tests(combination: Combination, tmp_path: Path) -> None:
    render_dir = render_combination(combination, tmp_path)

    outcome = check_rendered(combination, render_dir)

    assert outcome.failed_step is None, outcome.output[-8000:]
