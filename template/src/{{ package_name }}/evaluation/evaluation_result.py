"""Result of a task's evaluation as `run_evaluation` receives it, and the naming of outputs."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from matplotlib.figure import Figure


@dataclass
class EvaluationResult:
    """Outputs of one task's evaluation before they are written and logged.

    ``metrics`` is flat (name -> number) for metrics.json and the trackers. ``figures`` maps a
    file stem to a figure. ``tables`` maps a file stem to nested JSON data (binned
    resolutions, the confusion matrix). ``columns`` contains the task's branches of
    predictions.root, one value per event.
    """

    metrics: dict[str, float] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)
    tables: dict[str, object] = field(default_factory=dict)
    columns: dict[str, np.ndarray] = field(default_factory=dict)


def output_name(*parts: str | int) -> str:
    """Join ``parts`` with underscores into a name safe for metric keys, files and ROOT branches.

    Characters other than letters, digits, '.', '-' and '_' become '_', so a class called
    "H->ZZ" gives "H-_ZZ".
    """
    joined = "_".join(str(part) for part in parts)
    return re.sub(r"[^0-9A-Za-z_.-]+", "_", joined)
