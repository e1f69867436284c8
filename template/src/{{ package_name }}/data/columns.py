"""Type checks and conversion of evaluated expressions to NumPy columns."""

from __future__ import annotations

from typing import Any

import awkward as ak
import numpy as np

from .errors import DataError

SCALAR = "one number per event"
JAGGED = "a variable-length list of numbers per event"

# Advice for a per-object list where a target, label or weight (one value per event) is read;
# moving it to inputs.objects.branches would not apply there.
PER_EVENT_HINT = (
    "a {role} needs one value per event: reduce it in data.new_variables, "
    "e.g. ak.max(x, axis=1) or x[:, 0]"
)


def describe(value: Any) -> str:
    """Return what ``value`` contains per event, in the words that error messages use."""
    if not isinstance(value, ak.Array):
        array = np.asarray(value)
        if array.ndim == 0:
            return "a constant"
        if array.dtype.kind in "OSU":
            return "strings or objects"
        return SCALAR if array.ndim == 1 else f"a fixed-size array of shape {array.shape[1:]}"
    content = _strip_options(value.type.content)
    return _describe_type(content)


def _strip_options(form_type: Any) -> Any:
    while isinstance(form_type, ak.types.OptionType):
        form_type = form_type.content
    return form_type


def _describe_type(content: Any) -> str:
    if _is_string(content):
        return "strings"
    if isinstance(content, ak.types.NumpyType):
        return SCALAR
    if isinstance(content, ak.types.RecordType):
        return "records (e.g. four-vectors); select a field such as .pt"
    if isinstance(content, ak.types.ListType | ak.types.RegularType):
        inner = _strip_options(content.content)
        if _is_string(inner):
            return "lists of strings"
        if isinstance(inner, ak.types.NumpyType):
            return JAGGED
        if isinstance(inner, ak.types.RecordType):
            return "lists of records (e.g. four-vectors); select a field such as .pt"
        return "nested lists (more than one level of lists per event)"
    if isinstance(content, ak.types.UnknownType):
        return "values of unknown type (an empty selection)"
    return f"values of type {content}"


def _is_string(form_type: Any) -> bool:
    return form_type.parameter("__array__") in ("string", "bytestring")


def scalar_column(
    value: Any, length: int, name: str, where: str, role: str = "feature"
) -> np.ndarray:
    """Return ``value`` as a 1-D numeric array of ``length`` entries (None becomes NaN).

    Constants broadcast to every event, so an alias such as ``"1.0"`` gives a unit weight.
    ``role`` (feature, target, label or weight) picks the advice for a per-object list.
    """
    kind = describe(value)
    if kind == "a constant":
        return np.full(length, value)
    if kind != SCALAR:
        if kind == JAGGED and role != "feature":
            hint = PER_EVENT_HINT.format(role=role)
        else:
            hint = _scalar_hint(kind)
        msg = f"{name!r} in {where} must be {SCALAR} but contains {kind}; {hint}"
        raise DataError(msg)
    if isinstance(value, ak.Array):
        if isinstance(value.type.content, ak.types.OptionType):
            value = ak.fill_none(value, np.nan)
        return ak.to_numpy(value)
    return np.asarray(value)


def _scalar_hint(kind: str) -> str:
    if kind == JAGGED:
        return (
            "list it under inputs.objects.branches, or reduce it to one value per event in "
            "new_variables, e.g. ak.max(x, axis=1), ak.num(x) or ak.firsts(x)"
        )
    if "string" in kind:
        return "strings cannot be model inputs: use a numeric branch, or keep it as an observer"
    return "select or reduce it to one number per event in new_variables"


def jagged_column(value: Any, name: str, where: str) -> ak.Array:
    """Return ``value`` as an awkward array with one list of numbers per event."""
    kind = describe(value)
    if kind != JAGGED:
        if kind in (SCALAR, "a constant"):
            hint = (
                "list it under inputs.features, or broadcast it to the objects in "
                "new_variables, e.g. x * ak.ones_like(Jet_pt)"
            )
        elif "string" in kind:
            hint = "strings cannot be model inputs: use a numeric branch"
        else:
            hint = "select or reduce it to one number per object in new_variables"
        msg = f"{name!r} in {where} must be {JAGGED} but contains {kind}; {hint}"
        raise DataError(msg)
    return value


def observer_column(value: Any, length: int, name: str, where: str) -> np.ndarray:
    """Return an observer as a 1-D array; unlike inputs, observers may be strings."""
    kind = describe(value)
    if kind in ("strings", "a constant"):
        if kind == "a constant":
            return np.full(length, value)
        return np.asarray(ak.to_list(value), dtype=str)
    return scalar_column(value, length, name, where)
