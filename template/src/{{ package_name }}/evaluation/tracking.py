"""Logging of evaluation metrics, plots and files to the Lightning loggers of the run.

One function per logger class; `log_evaluation` picks it by the logger's class (subclasses
included). Metrics are logged under the prefix ``evaluation/`` so they do not mix with the
training curves.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lightning.pytorch.loggers import (
    CSVLogger,
    Logger,
    MLFlowLogger,
    TensorBoardLogger,
    WandbLogger,
)
from matplotlib.figure import Figure
from torch import Tensor

log = logging.getLogger(__name__)

PREFIX = "evaluation"


@dataclass
class EvaluationOutputs:
    """Metrics, figures with their PNG and PDF files, and other files for `log_evaluation`."""

    metrics: Mapping[str, float]
    figures: Mapping[str, Figure] = field(default_factory=dict)
    figure_paths: Mapping[str, Mapping[str, Path]] = field(default_factory=dict)
    files: Sequence[Path] = ()

    def finite_metrics(self) -> dict[str, float]:
        """Return the prefixed metrics without NaN and infinity, which some trackers reject."""
        return {
            f"{PREFIX}/{key}": float(value)
            for key, value in self.metrics.items()
            if math.isfinite(value)
        }


def log_evaluation(
    loggers: Sequence[Logger], outputs: EvaluationOutputs, step: int | None = None
) -> None:
    """Log ``outputs`` to every logger in ``loggers``, warning about unsupported logger classes."""
    for logger in loggers:
        handler = _handler_for(logger)
        if handler is None:
            log.warning(
                "Logger %s is not supported for evaluation outputs: its metrics and plots are "
                "only in the output folder",
                type(logger).__name__,
            )
            continue
        log.info(
            "Evaluation: logging %d metrics and %d plots to %s",
            len(outputs.metrics),
            len(outputs.figures),
            type(logger).__name__,
        )
        handler(logger, outputs, step)
        logger.save()


def _log_to_csv(logger: CSVLogger, outputs: EvaluationOutputs, step: int | None) -> None:
    # CSV has no place for images; the plots stay in the output folder.
    metrics: dict[str, Tensor | float] = {**outputs.finite_metrics()}
    logger.log_metrics(metrics, step=step)


def _log_to_tensorboard(
    logger: TensorBoardLogger, outputs: EvaluationOutputs, step: int | None
) -> None:
    logger.log_metrics(outputs.finite_metrics(), step=step)
    for name, figure in outputs.figures.items():
        logger.experiment.add_figure(f"{PREFIX}/{name}", figure, global_step=step, close=False)


def _log_to_wandb(logger: WandbLogger, outputs: EvaluationOutputs, step: int | None) -> None:
    logger.log_metrics(outputs.finite_metrics(), step=step)
    for name, paths in outputs.figure_paths.items():
        logger.log_image(f"{PREFIX}/{name}", images=[str(paths["png"])], step=step)


def _log_to_mlflow(logger: MLFlowLogger, outputs: EvaluationOutputs, step: int | None) -> None:
    logger.log_metrics(outputs.finite_metrics(), step=step)
    for paths in outputs.figure_paths.values():
        for path in paths.values():
            logger.experiment.log_artifact(
                logger.run_id, str(path), artifact_path=f"{PREFIX}/plots"
            )
    for path in outputs.files:
        logger.experiment.log_artifact(logger.run_id, str(path), artifact_path=PREFIX)


_HANDLERS: dict[type[Logger], Callable[..., None]] = {
    CSVLogger: _log_to_csv,
    TensorBoardLogger: _log_to_tensorboard,
    WandbLogger: _log_to_wandb,
    MLFlowLogger: _log_to_mlflow,
}


def _handler_for(logger: Logger) -> Callable[..., None] | None:
    for cls in type(logger).__mro__:
        if cls in _HANDLERS:
            return _HANDLERS[cls]
    return None
