"""`run_evaluation`: metrics, plots, predictions.root and tracker logging of one evaluated split.

The task's own evaluation lives in the module of this package named after the task
(``classification`` or ``regression``), which provides ``evaluate_predictions``.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from lightning.pytorch.loggers import Logger

from .evaluation_result import EvaluationResult
from .figures import PlotStyle, hep_style, save_figure
from .metrics_io import write_json, write_metrics
from .root_output import write_predictions
from .tracking import EvaluationOutputs, log_evaluation
from .weighted_statistics import effective_entries

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.root"
PLOTS_FOLDER = "plots"


class ObserverSource(Protocol):
    """The data module as `run_evaluation` uses it; the task's evaluation also reads
    ``class_names`` or ``target_names``."""

    def observers(self, split: str) -> Mapping[str, np.ndarray]: ...


def run_evaluation(
    task: str,
    predictions: Mapping[str, np.ndarray],
    datamodule: ObserverSource,
    output_dir: Path,
    loggers: Sequence[Logger],
    train_predictions: Mapping[str, np.ndarray] | None = None,
    *,
    split: str = "test",
    style: PlotStyle | None = None,
    step: int | None = None,
    baselines: Sequence[str] = (),
) -> dict[str, float]:
    """Evaluate the predictions of one split, write every output and log it to the trackers.

    Each array of ``predictions`` contains one entry per event: ``index`` (row of the event in
    ``split``), ``weight`` (physics event weight) and ``target``, plus ``score`` for
    classification or ``prediction`` (physical units) for regression. ``train_predictions``,
    the same for training events, enables the overtraining check. ``datamodule`` provides
    ``class_names`` or ``target_names`` and ``observers(split)``.

    Writes ``metrics.json``, one JSON file per table, ``plots/*.png`` and ``plots/*.pdf``, and
    ``predictions.root`` (TTree ``predictions``) under ``output_dir``, each atomically. Returns
    the flat metrics, which the loggers receive with the prefix ``evaluation/`` at ``step``
    (the trainer's global step, so they follow the training rows; None lets each logger choose).
    ``baselines`` names observers to compare with the model on the same events (classification:
    each observer alone as the discriminant).
    """
    evaluate_predictions = _task_evaluation(task)
    options: dict[str, tuple[str, ...]] = {}
    if baselines:
        if "baselines" not in inspect.signature(evaluate_predictions).parameters:
            message = (
                f"the {task} evaluation takes no baselines, got {list(baselines)}: remove "
                "baselines from the configuration"
            )
            raise ValueError(message)
        options["baselines"] = tuple(baselines)
    style = style or PlotStyle()
    output_dir = Path(output_dir)

    n_events = _check_event_arrays(predictions, "predictions")
    if train_predictions is not None:
        _check_event_arrays(train_predictions, "train_predictions")
    index = np.asarray(predictions["index"], dtype=np.int64)
    weights = np.asarray(predictions["weight"], dtype=np.float64)
    log.info("Evaluation [1/4]: %d %s events of task %s, reading observers", n_events, split, task)
    observers = _observers_in_prediction_order(datamodule.observers(split), index, split)

    log.info("Evaluation [2/4]: metrics and plots")
    result: EvaluationResult = evaluate_predictions(
        predictions, datamodule, observers, style, train_predictions, **options
    )
    metrics = {
        "n_events": float(n_events),
        "n_effective_events": effective_entries(weights),
        **result.metrics,
    }

    log.info(
        "Evaluation [3/4]: writing %d plots, metrics and predictions to %s",
        len(result.figures),
        output_dir,
    )
    figure_paths = {
        name: save_figure(figure, output_dir / PLOTS_FOLDER, name, style)
        for name, figure in result.figures.items()
    }
    metrics_path = output_dir / METRICS_FILE
    write_metrics(metrics_path, metrics)
    table_paths = []
    for name, table in result.tables.items():
        table_paths.append(output_dir / f"{name}.json")
        write_json(table_paths[-1], table)
    columns = {"index": index, **result.columns, "weight": np.asarray(predictions["weight"])}
    write_predictions(output_dir / PREDICTIONS_FILE, columns, observers)

    log.info("Evaluation [4/4]: logging to %d trackers", len(loggers))
    outputs = EvaluationOutputs(
        metrics=metrics,
        figures=result.figures,
        figure_paths=figure_paths,
        files=[metrics_path, *table_paths],
    )
    # TensorBoard renders the figures itself, so it must see the style of the saved files.
    # Drawing outside the style after drawing inside it also makes matplotlib warn about fonts.
    with hep_style(style):
        log_evaluation(loggers, outputs, step)
    return metrics


def _task_evaluation(task: str) -> Callable[..., EvaluationResult]:
    """Return ``evaluate_predictions`` of the module named after ``task``."""
    module_name = f"{__package__}.{task}"
    try:
        module = importlib.import_module(module_name) if task.isidentifier() else None
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise
        module = None
    evaluate: Callable[..., EvaluationResult] | None = getattr(module, "evaluate_predictions", None)
    if evaluate is None:
        message = (
            f"task {task!r} has no evaluation in {__package__}: this project was generated for "
            "one task (see .copier-answers.yml), so set task to that one"
        )
        raise ValueError(message)
    return evaluate


def _check_event_arrays(predictions: Mapping[str, np.ndarray], source: str) -> int:
    """Check that ``index`` and ``weight`` exist and that every array has one entry per event."""
    for key in ("index", "weight"):
        if key not in predictions:
            message = f"{source} has no {key!r} array (keys: {sorted(predictions)})"
            raise KeyError(message)
    lengths = {key: len(np.asarray(values)) for key, values in predictions.items()}
    if len(set(lengths.values())) != 1:
        message = f"{source} arrays differ in length (events per key: {lengths})"
        raise ValueError(message)
    return lengths["index"]


def _observers_in_prediction_order(
    observers: Mapping[str, np.ndarray], index: np.ndarray, split: str
) -> dict[str, np.ndarray]:
    """Return each observer's values for the predicted events, in prediction order."""
    ordered = {}
    for name, split_values in observers.items():
        values = np.asarray(split_values)
        if index.size and (index.min() < 0 or index.max() >= len(values)):
            message = (
                f"prediction index runs from {index.min()} to {index.max()} but observer "
                f"{name!r} of split {split!r} has {len(values)} events: the predictions do not "
                "come from this split"
            )
            raise IndexError(message)
        ordered[name] = values[index]
    return ordered
