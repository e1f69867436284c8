"""Metrics and tables written as JSON files."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic_write import atomic_output

log = logging.getLogger(__name__)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` as indented JSON, atomically.

    NumPy scalars and arrays become plain numbers and lists. JSON has no NaN or infinity, so
    non-finite floats are written as ``null``: a background rejection is infinite when no
    background event passes the working point, and a resolution is NaN in an empty bin.
    """
    text = json.dumps(_to_json_value(data), indent=2, sort_keys=False, allow_nan=False)
    with atomic_output(path) as temporary:
        temporary.write_text(text + "\n", encoding="utf-8")


def write_metrics(path: Path, metrics: Mapping[str, float]) -> None:
    """Write the flat metrics dictionary to ``path`` (usually ``metrics.json``), atomically."""
    non_finite = [key for key, value in metrics.items() if not math.isfinite(value)]
    if non_finite:
        log.warning(
            "Metrics %s are not finite and are written as null to %s", ", ".join(non_finite), path
        )
    write_json(path, dict(metrics))


def read_metrics(path: Path) -> dict[str, float]:
    """Read a metrics file written by `write_metrics`; ``null`` entries come back as NaN."""
    with Path(path).open(encoding="utf-8") as stream:
        data = json.load(stream)
    return {key: math.nan if value is None else float(value) for key, value in data.items()}


def _to_json_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key): _to_json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json_value(item) for item in value]
    if isinstance(value, np.ndarray):
        return [_to_json_value(item) for item in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
