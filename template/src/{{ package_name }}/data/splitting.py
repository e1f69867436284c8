"""Reproducible train/validation/test assignment of events."""

from __future__ import annotations

import numpy as np

from .config import SplitConfig
from .errors import DataError

TRAIN, VAL, TEST = 0, 1, 2
SPLIT_NAMES = ("train", "val", "test")
SPLIT_CODES = {name: code for code, name in enumerate(SPLIT_NAMES)}

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix(values: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a bijective hash of uint64 values with good avalanche."""
    values = values.astype(np.uint64, copy=True)
    values ^= values >> np.uint64(30)
    values *= np.uint64(0xBF58476D1CE4E5B9)
    values ^= values >> np.uint64(27)
    values *= np.uint64(0x94D049BB133111EB)
    values ^= values >> np.uint64(31)
    return values & _MASK64


def uniform_hash(seed: int, file_key: int, entries: np.ndarray) -> np.ndarray:
    """Return a number in [0, 1) for each entry, fixed by (seed, file_key, entry) alone."""
    with np.errstate(over="ignore"):
        start = (seed * 0x9E3779B97F4A7C15 + file_key) & 0xFFFFFFFFFFFFFFFF
        base = _mix(np.array([start], dtype=np.uint64))
        hashed = _mix(entries.astype(np.uint64) ^ base)
    return (hashed >> np.uint64(11)).astype(np.float64) * 2.0**-53


def assign_random(config: SplitConfig, file_key: int, entries: np.ndarray) -> np.ndarray:
    """Return the split code of each entry for ``method: random``."""
    u = uniform_hash(config.seed, file_key, entries)
    split = np.full(len(entries), TRAIN, dtype=np.int8)
    split[u < config.val_fraction + config.test_fraction] = VAL
    split[u < config.test_fraction] = TEST
    return split


def assign_modulo(config: SplitConfig, keys: np.ndarray, where: str) -> np.ndarray:
    """Return the split code of each event for ``method: modulo`` from integer ``keys``."""
    if keys.dtype.kind not in "iu":
        if keys.dtype.kind == "f" and np.all(np.isfinite(keys)) and np.all(keys == np.round(keys)):
            keys = keys.astype(np.int64)
        else:
            msg = (
                f"data.split.key {config.key!r} in {where} must be an integer (the event "
                f"number), got values of type {keys.dtype}"
            )
            raise DataError(msg)
    fold = np.mod(keys, config.k)
    split = np.full(len(keys), TRAIN, dtype=np.int8)
    split[fold == (config.fold + 1) % config.k] = VAL
    split[fold == config.fold] = TEST
    return split
