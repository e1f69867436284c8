"""Errors raised on bad input data or a bad data configuration."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class DataError(ValueError):
    """Bad input data or data configuration; the message names the file, tree, branch or
    expression involved and what to change."""


class ExpressionError(DataError):
    """An expression in the data configuration is invalid or failed to evaluate."""


def close_matches(name: str, candidates: Iterable[str], limit: int = 3) -> str:
    """Return a "close names: ..." hint for ``name``, or "" when nothing is close.

    The comparison ignores case, because branch names differ in case between formats
    (``Jet_pt`` in NanoAOD, ``jet_pt`` elsewhere).
    """
    by_lower: dict[str, str] = {}
    for candidate in candidates:
        by_lower.setdefault(candidate.lower(), candidate)
    matches = difflib.get_close_matches(name.lower(), list(by_lower), n=limit, cutoff=0.6)
    if not matches:
        return ""
    return "close names: " + ", ".join(by_lower[match] for match in matches)
