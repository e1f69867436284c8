"""Predictions written back to a ROOT TTree, next to the observers, for the analysis to continue.

The file holds a TTree (``mktree`` + ``extend``) rather than an RNTuple, so every ROOT 6 release
and TTree-based analysis code can read it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import uproot

from ..atomic_write import atomic_output

log = logging.getLogger(__name__)

TREE_NAME = "predictions"
# Events per basket; one extend() call writes one basket per branch.
CHUNK_SIZE = 100_000
LABELS_SUFFIX = "_labels"


def write_predictions(
    path: Path,
    columns: Mapping[str, np.ndarray],
    observers: Mapping[str, np.ndarray] | None = None,
    tree_name: str = TREE_NAME,
) -> list[str]:
    """Write ``columns`` and ``observers`` as branches of one TTree in ``path``, atomically.

    All arrays need one entry per event along axis 0; fixed-size trailing dimensions become
    fixed-size array branches. uproot cannot write string branches, so a string observer (such
    as the source name of each event) becomes an int32 branch of category codes. The file then
    gets a TObjString ``<name>_labels`` with the JSON list of labels, where code i means label
    i: ``json.loads(str(file["source_labels"]))``. Observers of other types are skipped with a
    warning, and an observer whose name is also a column is an error. Returns
    the names of the written branches.
    """
    branches: dict[str, np.ndarray] = {name: np.asarray(values) for name, values in columns.items()}
    labels: dict[str, list[str]] = {}
    for name, observer in (observers or {}).items():
        if name in branches:
            message = (
                f"observer {name!r} has the same name as a prediction branch of {path}: "
                "rename the observer in the data configuration"
            )
            raise ValueError(message)
        values = np.asarray(observer)
        if values.dtype.kind == "O" and all(isinstance(value, str) for value in values.flat):
            # Strings read through awkward or built in Python arrive as an object array.
            values = values.astype(str)
        if values.dtype.kind in "biuf":
            branches[name] = values
        elif values.dtype.kind in "US" and values.ndim == 1:
            categories, codes = np.unique(values, return_inverse=True)
            branches[name] = codes.astype(np.int32)
            labels[name] = [str(category) for category in categories]
        else:
            log.warning(
                "Observer %s has dtype %s and shape %s, which a TTree branch cannot hold: it is "
                "not written to %s",
                name,
                values.dtype,
                values.shape,
                path,
            )

    lengths = {name: len(values) for name, values in branches.items()}
    if len(set(lengths.values())) > 1:
        message = f"branches for {path} differ in length: {lengths}"
        raise ValueError(message)
    n_events = next(iter(lengths.values()), 0)

    branch_types = {
        name: np.dtype((values.dtype, values.shape[1:])) for name, values in branches.items()
    }
    with atomic_output(Path(path)) as temporary, uproot.recreate(temporary) as file:
        tree = file.mktree(tree_name, branch_types, title="Model predictions with observers")
        for start in range(0, n_events, CHUNK_SIZE):
            tree.extend(
                {name: values[start : start + CHUNK_SIZE] for name, values in branches.items()}
            )
        for name, names_of_codes in labels.items():
            file[f"{name}{LABELS_SUFFIX}"] = json.dumps(names_of_codes)
    log.info(
        "Wrote %d samples with branches %s to %s:%s", n_events, ", ".join(branches), path, tree_name
    )
    return list(branches)
