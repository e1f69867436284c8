"""Questionnaire combinations that the template's tests and nox sessions render.

The valid (task, use_gnn, model_family) triples come from the same table that copier.yml validates
against, so a family added to the template is tested without editing this file.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass
from pathlib import Path

TEMPLATE_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TEMPLATE_ROOT / "extensions"))

from questionnaire import MODEL_FAMILIES  # noqa: E402  (after the sys.path entry above)

TRACKERS = ("csv", "tensorboard", "mlflow", "wandb")
ACCELERATORS = ("cpu", "gpu")

# The tracker and accelerator answers change only the logger and trainer configs, train.yaml and
# evaluate.yaml, the W&B logger module and fixture, the dependencies in pyproject.toml, and the
# README. These rendered tests build a run from those configs; the rest of a suite renders
# identically for every tracker and accelerator of a (task, model family) pair (or, like the
# `train` command test, removes the logger and sets the accelerator), so it runs once per pair.
ANSWER_DEPENDENT_TESTS = (
    "tests/test_train.py",
    "tests/test_user_errors.py::test_train_reports_invalid_data_config",
)


@dataclass(frozen=True)
class Combination:
    """One set of questionnaire answers that changes which files are rendered."""

    task: str
    use_gnn: bool
    model_family: str
    tracker: str
    accelerator: str

    @property
    def name(self) -> str:
        gnn = "gnn-" if self.use_gnn else ""
        return f"{self.task}-{gnn}{self.model_family}-{self.tracker}-{self.accelerator}"

    @property
    def package_name(self) -> str:
        return self.name.replace("-", "_")

    def answers(self) -> dict[str, object]:
        return {
            "project_name": f"Matrix {self.name}",
            "package_name": self.package_name,
            "task": self.task,
            "use_gnn": self.use_gnn,
            "model_family": self.model_family,
            "tracker": self.tracker,
            "accelerator": self.accelerator,
        }


def model_choices() -> list[tuple[str, bool, str]]:
    """Return every valid (task, use_gnn, model_family) triple."""
    return [
        (task, use_gnn, family)
        for (task, use_gnn), families in MODEL_FAMILIES.items()
        for family in families
    ]


def full_matrix() -> list[Combination]:
    """Return every valid combination of the answers that select files."""
    return [
        Combination(task, use_gnn, family, tracker, accelerator)
        for (task, use_gnn, family), tracker, accelerator in itertools.product(
            model_choices(), TRACKERS, ACCELERATORS
        )
    ]


def whole_suite_combinations(combinations: list[Combination]) -> set[Combination]:
    """Return one combination per model choice in ``combinations``: these run the whole suite.

    Model choice number i prefers tracker i (cycling) so that each tracker meets a whole suite;
    the other combinations run ``ANSWER_DEPENDENT_TESTS`` only.
    """
    chosen = set()
    for index, choice in enumerate(model_choices()):
        candidates = [c for c in combinations if (c.task, c.use_gnn, c.model_family) == choice]
        preferred = [c for c in candidates if c.tracker == TRACKERS[index % len(TRACKERS)]]
        if candidates:
            chosen.add((preferred or candidates)[0])
    return chosen


def pytest_selection(combination: Combination, whole_suite: set[Combination]) -> tuple[str, ...]:
    """Return the rendered repo's pytest arguments for ``combination`` (fast tests only)."""
    files = () if combination in whole_suite else ANSWER_DEPENDENT_TESTS
    return ("-m", "not slow", *files)


def covering_set() -> list[Combination]:
    """Return a small set in which every (task, model_family) pair meets every tracker.

    Each model choice is rendered once with each tracker, and the accelerator alternates so that
    both of its values appear with every tracker and every task.
    """
    combinations = []
    for model_index, (task, use_gnn, family) in enumerate(model_choices()):
        for tracker_index, tracker in enumerate(TRACKERS):
            accelerator = ACCELERATORS[(model_index + tracker_index) % len(ACCELERATORS)]
            combinations.append(Combination(task, use_gnn, family, tracker, accelerator))
    return combinations
