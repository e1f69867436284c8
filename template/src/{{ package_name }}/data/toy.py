"""Toy ROOT datasets whose densities are known in closed form, and the command that writes them.

Classification: signal and background events (one file per process, tree ``events``) with
event-level ``met``, ``n_jets``, ``ht`` and a jet collection ``jet_pt``, ``jet_eta``,
``jet_phi``, ``jet_n_constituents``. Every variable has a simple density per process
(exponential, Poisson, Gaussian, uniform), so the likelihood ratio, the optimal classifier, is
:func:`optimal_score`. Event weights are positive except for a fraction of negative ones. Their
magnitude and sign are independent of the event, so weighting does not move the optimum.

Regression: the target ``true_energy`` is the sum of the true energies of calorimeter clusters,
each measured with Gaussian noise of a known, per-cluster width, plus a tracker measurement of
the total. Everything is Gaussian, so the posterior mean, the best estimate in mean squared
error, and its width, the best achievable resolution, are :func:`optimal_energy` and
:func:`optimal_resolution`.
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from ..atomic_write import atomic_output

log = logging.getLogger(__name__)

PROCESSES = ("background", "signal")
BASKET_ENTRIES = 5_000
INPUT_SETS = ("all", "features")
# Events per process with which make-toy-data estimates the optima (AUC uncertainty about 0.0015).
OPTIMUM_EVENTS = 100_000


@dataclass(frozen=True)
class ProcessDensity:
    """Parameters of one process of the classification toy (energies in GeV)."""

    jet_rate: float  # mean of the Poisson number of jets
    jet_pt_scale: float  # mean of jet_pt - JET_PT_MIN (exponential)
    jet_eta_width: float  # standard deviation of jet_eta (Gaussian)
    constituent_rate: float  # mean of jet_n_constituents - 1 (Poisson)
    met_scale: float  # mean of met (exponential)


JET_PT_MIN = 20.0
DENSITIES = {
    "signal": ProcessDensity(4.0, 50.0, 1.3, 15.0, 55.0),
    "background": ProcessDensity(3.2, 38.0, 1.6, 16.5, 35.0),
}
NEGATIVE_WEIGHT_FRACTION = 0.05

# Regression toy: cluster energies ~ N(CLUSTER_MEAN, CLUSTER_WIDTH^2), independent.
CLUSTER_MEAN = 20.0
CLUSTER_WIDTH = 6.0
CLUSTER_RATE = 3.0  # number of clusters = 1 + Poisson(CLUSTER_RATE)
TRACK_RESOLUTION_RANGE = (8.0, 20.0)  # GeV, uniform per event


def generate_classification(process: str, n_events: int, seed: int) -> dict[str, Any]:
    """Return the branches of ``n_events`` events of ``process`` ("signal" or "background")."""
    density = DENSITIES[process]
    rng = np.random.default_rng([seed, PROCESSES.index(process)])
    n_jets = rng.poisson(density.jet_rate, n_events)
    total = int(n_jets.sum())
    pt = JET_PT_MIN + rng.exponential(density.jet_pt_scale, total)
    eta = rng.normal(0.0, density.jet_eta_width, total)
    phi = rng.uniform(-math.pi, math.pi, total)
    constituents = 1 + rng.poisson(density.constituent_rate, total)
    met = rng.exponential(density.met_scale, n_events)
    magnitude = rng.uniform(0.5, 1.5, n_events)
    sign = np.where(rng.random(n_events) < NEGATIVE_WEIGHT_FRACTION, -1.0, 1.0)

    # Jets are stored in decreasing pt, as reconstruction software writes them.
    owner = np.repeat(np.arange(n_events), n_jets)
    order = np.lexsort((-pt, owner))
    jets = ak.unflatten(
        ak.zip(
            {
                "pt": pt[order].astype(np.float32),
                "eta": eta[order].astype(np.float32),
                "phi": phi[order].astype(np.float32),
                "n_constituents": constituents[order].astype(np.int32),
            }
        ),
        n_jets,
    )
    return {
        "event": np.arange(n_events, dtype=np.uint64) + np.uint64(PROCESSES.index(process) << 40),
        "run": np.full(n_events, 1, dtype=np.int32),
        "met": met.astype(np.float32),
        "n_jets": n_jets.astype(np.int32),
        "ht": ak.to_numpy(ak.sum(jets.pt, axis=1)).astype(np.float32),
        "weight": (sign * magnitude).astype(np.float32),
        "jet": jets,
    }


def _log_ratio(parameter_signal: float, parameter_background: float) -> float:
    return math.log(parameter_signal / parameter_background)


def optimal_score(events: Mapping[str, Any], inputs: str = "all") -> np.ndarray:
    """Return the log-likelihood ratio log p(event | signal) / p(event | background).

    ``events`` contains ``met``, ``n_jets``, ``ht`` and, for ``inputs="all"``, the jagged
    ``jet_eta`` and ``jet_n_constituents`` (all jets, not truncated). ``inputs="features"``
    uses the event-level features only, the optimum for a model without the jets. It is
    exact because ``n_jets`` and ``ht`` are sufficient statistics for the jet pt.
    """
    if inputs not in INPUT_SETS:
        msg = f"inputs is {inputs!r}; valid values: {', '.join(INPUT_SETS)}"
        raise ValueError(msg)
    s, b = DENSITIES["signal"], DENSITIES["background"]
    met = np.asarray(events["met"], dtype=np.float64)
    n_jets = np.asarray(events["n_jets"], dtype=np.float64)
    pt_excess = np.asarray(events["ht"], dtype=np.float64) - JET_PT_MIN * n_jets

    score = -_log_ratio(s.met_scale, b.met_scale) + met * (1 / b.met_scale - 1 / s.met_scale)
    score += n_jets * _log_ratio(s.jet_rate, b.jet_rate) - (s.jet_rate - b.jet_rate)
    score += -n_jets * _log_ratio(s.jet_pt_scale, b.jet_pt_scale)
    score += pt_excess * (1 / b.jet_pt_scale - 1 / s.jet_pt_scale)
    if inputs == "features":
        return score

    eta_squared = ak.to_numpy(ak.sum(ak.Array(events["jet_eta"]) ** 2, axis=1))
    score += -n_jets * _log_ratio(s.jet_eta_width, b.jet_eta_width)
    score += -0.5 * eta_squared * (1 / s.jet_eta_width**2 - 1 / b.jet_eta_width**2)
    extra = ak.to_numpy(ak.sum(ak.Array(events["jet_n_constituents"]) - 1, axis=1))
    score += extra * _log_ratio(s.constituent_rate, b.constituent_rate)
    score += -n_jets * (s.constituent_rate - b.constituent_rate)
    return score


def _flat_jets(events: Mapping[str, Any]) -> dict[str, Any]:
    flat = {name: events[name] for name in ("met", "n_jets", "ht")}
    flat["jet_eta"] = events["jet"].eta
    flat["jet_n_constituents"] = events["jet"].n_constituents
    return flat


def auc_score(signal: np.ndarray, background: np.ndarray) -> float:
    """Return the probability that a signal score exceeds a background score (ties count
    one half), which is the area under the ROC curve."""
    scores = np.concatenate([signal, background])
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # Average ranks over ties, so tied scores contribute one half.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    n_signal, n_background = len(signal), len(background)
    rank_sum = ranks[:n_signal].sum()
    return float((rank_sum - n_signal * (n_signal + 1) / 2.0) / (n_signal * n_background))


def optimal_auc(inputs: str = "all", n_events: int = 200_000, seed: int = 12345) -> float:
    """Return the AUC of the likelihood ratio, estimated on ``n_events`` fresh events per
    process; its statistical uncertainty is about 0.001 for the default size."""
    scores = {
        process: optimal_score(_flat_jets(generate_classification(process, n_events, seed)), inputs)
        for process in PROCESSES
    }
    return auc_score(scores["signal"], scores["background"])


def generate_regression(n_events: int, seed: int) -> dict[str, Any]:
    """Return the branches of ``n_events`` events of the regression toy (energies in GeV)."""
    rng = np.random.default_rng([seed, 7])
    n_clusters = 1 + rng.poisson(CLUSTER_RATE, n_events)
    total = int(n_clusters.sum())
    true_cluster = rng.normal(CLUSTER_MEAN, CLUSTER_WIDTH, total)
    eta = rng.uniform(-2.5, 2.5, total)
    phi = rng.uniform(-math.pi, math.pi, total)
    # The calorimeter resolves clusters worse in the forward region.
    cluster_error = 1.0 + 4.0 * np.abs(eta)
    measured = true_cluster + rng.normal(0.0, 1.0, total) * cluster_error
    owner = np.repeat(np.arange(n_events), n_clusters)
    true_energy = np.bincount(owner, weights=true_cluster, minlength=n_events)
    track_error = rng.uniform(*TRACK_RESOLUTION_RANGE, n_events)
    track = true_energy + rng.normal(0.0, 1.0, n_events) * track_error

    clusters = ak.unflatten(
        ak.zip(
            {
                "e": measured.astype(np.float32),
                "e_err": cluster_error.astype(np.float32),
                "eta": eta.astype(np.float32),
                "phi": phi.astype(np.float32),
            }
        ),
        n_clusters,
    )
    sum_error = np.sqrt(np.bincount(owner, weights=cluster_error**2, minlength=n_events))
    return {
        "event": np.arange(n_events, dtype=np.uint64),
        "run": np.full(n_events, 1, dtype=np.int32),
        "n_clusters": n_clusters.astype(np.int32),
        "sum_e": np.bincount(owner, weights=measured, minlength=n_events).astype(np.float32),
        "sum_e_err": sum_error.astype(np.float32),
        "track_e": track.astype(np.float32),
        "track_e_err": track_error.astype(np.float32),
        "true_energy": true_energy.astype(np.float32),
        "cluster": clusters,
    }


def _posterior(events: Mapping[str, Any], inputs: str) -> tuple[np.ndarray, np.ndarray]:
    """Return the posterior mean and variance of the true energy given the measurements."""
    if inputs not in INPUT_SETS:
        msg = f"inputs is {inputs!r}; valid values: {', '.join(INPUT_SETS)}"
        raise ValueError(msg)
    prior_precision = 1.0 / CLUSTER_WIDTH**2
    track = np.asarray(events["track_e"], dtype=np.float64)
    track_precision = 1.0 / np.asarray(events["track_e_err"], dtype=np.float64) ** 2
    if inputs == "all":
        # Each cluster: Gaussian prior times Gaussian measurement; the sum of independent
        # Gaussian posteriors is Gaussian.
        measured = ak.Array(events["cluster_e"])
        precision = prior_precision + 1.0 / ak.Array(events["cluster_e_err"]) ** 2
        cluster_mean = CLUSTER_MEAN * prior_precision + measured * (precision - prior_precision)
        mean = ak.to_numpy(ak.sum(cluster_mean / precision, axis=1))
        variance = ak.to_numpy(ak.sum(1.0 / precision, axis=1))
    else:
        # Given only the sum: prior N(n mu, n tau^2) times the measurement of the sum.
        n = np.asarray(events["n_clusters"], dtype=np.float64)
        sum_precision = 1.0 / np.asarray(events["sum_e_err"], dtype=np.float64) ** 2
        total_prior = prior_precision / n
        precision = total_prior + sum_precision
        mean = n * CLUSTER_MEAN * total_prior + np.asarray(events["sum_e"]) * sum_precision
        mean = mean / precision
        variance = 1.0 / precision
    # The tracker measures the total energy independently of the clusters.
    combined_precision = 1.0 / variance + track_precision
    combined_mean = (mean / variance + track * track_precision) / combined_precision
    return combined_mean, 1.0 / combined_precision


def optimal_energy(events: Mapping[str, Any], inputs: str = "all") -> np.ndarray:
    """Return the posterior mean of ``true_energy``, the estimate with the least mean squared
    error. ``events`` contains ``track_e``, ``track_e_err`` and either the jagged ``cluster_e``,
    ``cluster_e_err`` (``inputs="all"``) or ``n_clusters``, ``sum_e``, ``sum_e_err``
    (``inputs="features"``)."""
    return _posterior(events, inputs)[0]


def optimal_resolution(events: Mapping[str, Any], inputs: str = "all") -> np.ndarray:
    """Return the posterior standard deviation of ``true_energy`` per event, in GeV."""
    return np.sqrt(_posterior(events, inputs)[1])


def optimal_rmse(inputs: str = "all", n_events: int = 200_000, seed: int = 12345) -> float:
    """Return the root-mean-square error of the optimal estimate, in GeV, over the toy's
    population (the root of the mean posterior variance), estimated on ``n_events`` events."""
    events = generate_regression(n_events, seed)
    flat = {k: v for k, v in events.items() if k != "cluster"}
    flat["cluster_e"] = events["cluster"].e
    flat["cluster_e_err"] = events["cluster"].e_err
    return float(np.sqrt(np.mean(_posterior(flat, inputs)[1])))


def write_tree(path: Path, branches: Mapping[str, Any], tree: str = "events") -> None:
    """Write ``branches`` as a TTree to ``path`` atomically (temporary file, then rename)."""
    n_entries = len(next(iter(branches.values())))
    with atomic_output(path) as temporary, uproot.recreate(temporary) as root_file:
        root_file.mktree(tree, {name: _branch_type(value) for name, value in branches.items()})
        # One basket per BASKET_ENTRIES entries, as ROOT writes large trees, so that streaming
        # and parallel workers see files with many baskets.
        for start in range(0, n_entries, BASKET_ENTRIES):
            stop = start + BASKET_ENTRIES
            root_file[tree].extend({name: value[start:stop] for name, value in branches.items()})


def _branch_type(value: Any) -> Any:
    return value.type if isinstance(value, ak.Array) else value.dtype


def write_classification(output_dir: Path, n_events: int, seed: int) -> list[Path]:
    """Write ``signal.root`` and ``background.root`` with ``n_events`` events each."""
    paths = []
    for process in PROCESSES:
        path = output_dir / "classification" / f"{process}.root"
        write_tree(path, generate_classification(process, n_events, seed))
        paths.append(path)
    return paths


def write_regression(output_dir: Path, n_events: int, seed: int) -> list[Path]:
    """Write ``clusters.root`` with ``n_events`` events."""
    path = output_dir / "regression" / "clusters.root"
    write_tree(path, generate_regression(n_events, seed))
    return [path]


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``make-toy-data`` command."""
    parser = argparse.ArgumentParser(
        prog="make-toy-data",
        description="Write the toy ROOT datasets that the default data configs read.",
    )
    parser.add_argument(
        "--task",
        choices=("all", "classification", "regression"),
        default="all",
        help="which toy dataset to write (default: all)",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=Path("data/toy"),
        help="folder for the files (default: data/toy, the folder the data configs read)",
    )
    parser.add_argument(
        "--events",
        type=int,
        default=20_000,
        help="events per file (default: 20000)",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    args = parser.parse_args(argv)
    if args.events < 1:
        parser.error(f"--events must be positive, got {args.events}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    written = []
    if args.task in ("all", "classification"):
        written += write_classification(args.output_dir, args.events, args.seed)
    if args.task in ("all", "regression"):
        written += write_regression(args.output_dir, args.events, args.seed)
    for path in written:
        log.info("wrote %s", path.resolve())
    if args.task in ("all", "classification"):
        log.info(
            "Best achievable AUC on the classification toy (likelihood ratio, unweighted): "
            "%.3f from the event-level features, %.3f with the jets too",
            optimal_auc("features", OPTIMUM_EVENTS),
            optimal_auc("all", OPTIMUM_EVENTS),
        )
    if args.task in ("all", "regression"):
        log.info(
            "Best achievable RMSE on the regression toy: %.2f GeV from the event-level "
            "features, %.2f GeV with the clusters too",
            optimal_rmse("features", OPTIMUM_EVENTS),
            optimal_rmse("all", OPTIMUM_EVENTS),
        )


if __name__ == "__main__":
    main()
