"""Two-sample Kolmogorov-Smirnov test for weighted samples, used as the overtraining check."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import kolmogorov

from .weighted_statistics import as_weights, effective_entries


@dataclass(frozen=True)
class KsResult:
    """Largest distance between two empirical distribution functions and its p-value."""

    statistic: float
    pvalue: float
    n_effective: float


def ks_test(
    first: ArrayLike,
    second: ArrayLike,
    first_weights: ArrayLike | None = None,
    second_weights: ArrayLike | None = None,
) -> KsResult:
    """Compare two weighted samples with the asymptotic two-sample Kolmogorov-Smirnov test.

    The statistic D is the largest difference between the two weighted empirical distribution
    functions. The p-value is the asymptotic Kolmogorov survival function at sqrt(n) D, with
    n = N1 N2 / (N1 + N2) built from the effective numbers of events N_eff = (sum w)^2 / sum w^2.
    For unit weights this agrees with ``scipy.stats.ks_2samp(..., method="asymp")`` up to that
    function's finite-size correction. For weighted samples the effective sizes are an
    approximation, the same one that ROOT's ``TH1::KolmogorovTest`` makes for weighted
    histograms (ROOT 6.06). The asymptotic distribution needs N_eff of a few tens or more in
    each sample; below that the p-value is a rough guide only.

    NOTE: with negative weights the distribution functions need not be monotonic; D is still
    their largest difference, but the p-value has no exact meaning then.
    """
    first = np.asarray(first, dtype=np.float64)
    second = np.asarray(second, dtype=np.float64)
    first_weights = as_weights(first_weights, len(first))
    second_weights = as_weights(second_weights, len(second))
    first_total = float(np.sum(first_weights))
    second_total = float(np.sum(second_weights))
    if first_total <= 0.0 or second_total <= 0.0:
        message = (
            f"the Kolmogorov-Smirnov test needs a positive total weight in both samples, got "
            f"{first_total:g} ({len(first)} events) and {second_total:g} ({len(second)} events)"
        )
        raise ValueError(message)

    points = np.unique(np.concatenate([first, second]))
    difference = _cumulative_fraction(first, first_weights, first_total, points) - (
        _cumulative_fraction(second, second_weights, second_total, points)
    )
    statistic = float(np.max(np.abs(difference)))

    n_first = effective_entries(first_weights)
    n_second = effective_entries(second_weights)
    n_effective = n_first * n_second / (n_first + n_second)
    pvalue = float(np.clip(kolmogorov(np.sqrt(n_effective) * statistic), 0.0, 1.0))
    return KsResult(statistic=statistic, pvalue=pvalue, n_effective=n_effective)


def _cumulative_fraction(
    values: np.ndarray, weights: np.ndarray, total: float, points: np.ndarray
) -> np.ndarray:
    """Fraction of the total weight at values <= each point."""
    order = np.argsort(values, kind="stable")
    cumulative = np.concatenate([[0.0], np.cumsum(weights[order])])
    return cumulative[np.searchsorted(values[order], points, side="right")] / total
