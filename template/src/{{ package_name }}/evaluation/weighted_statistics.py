"""Statistics of samples with event weights, which may be negative (e.g. NLO generators).

Every function takes ``weights=None`` to mean unit weights.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def as_weights(weights: ArrayLike | None, n_events: int) -> np.ndarray:
    """Return ``weights`` as a float64 array of length ``n_events`` (ones when ``None``)."""
    if weights is None:
        return np.ones(n_events)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (n_events,):
        message = (
            f"weights have shape {weights.shape} but the values have {n_events} events: "
            "pass one weight per event"
        )
        raise ValueError(message)
    if not np.all(np.isfinite(weights)):
        message = (
            f"{np.count_nonzero(~np.isfinite(weights))} event weights are NaN or infinite: "
            "fix the weight expression or select those events away"
        )
        raise ValueError(message)
    return weights


def effective_entries(weights: ArrayLike) -> float:
    """Return the effective number of events N_eff = (sum w)^2 / sum w^2.

    N_eff equals the number of events for unit weights and is the size of an unweighted sample
    with the same relative statistical uncertainty on the sum of weights. It is 0 for an empty
    sample and small when positive and negative weights cancel.
    """
    weights = np.asarray(weights, dtype=np.float64)
    sum_of_squares = float(np.sum(weights**2))
    if sum_of_squares == 0.0:
        return 0.0
    return float(np.sum(weights)) ** 2 / sum_of_squares


def weighted_quantile(
    values: ArrayLike, quantiles: ArrayLike, weights: ArrayLike | None = None
) -> np.ndarray:
    """Return the weighted quantiles of ``values`` by inverting the cumulative distribution.

    The q-quantile is the smallest value whose cumulative weight reaches q times the total
    weight, the weighted form of ``np.quantile(..., method="inverted_cdf")``; with unit weights
    both agree. With negative weights the cumulative weight can go down again, and the first
    value where it reaches the level is taken. Returns NaN for an empty sample or a total
    weight that is not positive.
    """
    values = np.asarray(values, dtype=np.float64)
    quantiles = np.atleast_1d(np.asarray(quantiles, dtype=np.float64))
    if np.any((quantiles < 0.0) | (quantiles > 1.0)):
        message = f"quantiles must lie in [0, 1], got {quantiles.tolist()}"
        raise ValueError(message)
    weights = as_weights(weights, len(values))
    total = float(np.sum(weights))
    if len(values) == 0 or total <= 0.0:
        return np.full(len(quantiles), np.nan)

    order = np.argsort(values, kind="stable")
    # The running maximum is non-decreasing, and its first index at or above a level is the first
    # index where the cumulative weight itself reaches that level.
    cumulative = np.maximum.accumulate(np.cumsum(weights[order]))
    positions = np.searchsorted(cumulative, quantiles * total, side="left")
    positions = np.minimum(positions, len(values) - 1)
    return values[order][positions]


def weighted_mean_and_std(
    values: ArrayLike, weights: ArrayLike | None = None
) -> tuple[float, float]:
    """Return the weighted mean and standard deviation of ``values``.

    The variance is sum w (x - mean)^2 / sum w, without a small-sample correction. Both are NaN
    when the total weight is not positive; the standard deviation is also NaN when negative
    weights make the variance estimate negative.
    """
    values = np.asarray(values, dtype=np.float64)
    weights = as_weights(weights, len(values))
    total = float(np.sum(weights))
    if total <= 0.0:
        return np.nan, np.nan
    mean = float(np.sum(weights * values) / total)
    variance = float(np.sum(weights * (values - mean) ** 2) / total)
    return mean, float(np.sqrt(variance)) if variance >= 0.0 else np.nan


def weighted_histogram(
    values: ArrayLike, bins: ArrayLike, weights: ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return the sum of weights per bin and its statistical uncertainty sqrt(sum w^2)."""
    values = np.asarray(values, dtype=np.float64)
    weights = as_weights(weights, len(values))
    counts, _ = np.histogram(values, bins=bins, weights=weights)
    sum_of_squares, _ = np.histogram(values, bins=bins, weights=weights**2)
    return counts, np.sqrt(sum_of_squares)
