"""Predictions of a trained task on one split, and their evaluation."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import Logger

from .data.datamodule import RootDataModule
from .data.errors import DataError
from .evaluation import PlotStyle, run_evaluation
from .tasks.base import SupervisedTask

log = logging.getLogger(__name__)


def predict_split(
    trainer: Trainer, task: SupervisedTask, datamodule: RootDataModule, split: str
) -> dict[str, np.ndarray]:
    """Run ``task`` on every event of ``split`` and return NumPy arrays sorted by ``index``.

    The arrays are those of ``predict_step`` (``score`` or ``prediction``, ``index``,
    ``target``, ``weight``). Regression predictions and targets are mapped back to physical
    units with the data module's preprocessor.
    """
    batches = trainer.predict(
        task, dataloaders=datamodule.predict_dataloader(split), return_predictions=True
    )
    if not batches:
        msg = (
            f"the {split} split has no events to predict; check data.split and data.selection "
            "in the data config"
        )
        raise DataError(msg)
    # One dataloader, so a flat list with one predict_step result per batch.
    outputs = cast(list[dict[str, torch.Tensor]], batches)
    arrays = {key: torch.cat([output[key] for output in outputs]).numpy() for key in outputs[0]}
    order = np.argsort(arrays["index"], kind="stable")
    arrays = {key: values[order] for key, values in arrays.items()}
    if "prediction" in arrays:
        inverse = datamodule.preprocessor.inverse_transform_target
        arrays["prediction"] = inverse(arrays["prediction"])
        arrays["target"] = inverse(arrays["target"])
    return arrays


def evaluate_split(
    trainer: Trainer,
    task: SupervisedTask,
    datamodule: RootDataModule,
    output_dir: Path,
    loggers: list[Logger],
    split: str = "test",
    plot_style: Mapping[str, Any] | None = None,
    baselines: Sequence[str] = (),
) -> dict[str, float]:
    """Predict ``split`` (and the training split, for the overtraining check), then write and
    log metrics, plots and predictions.root into ``output_dir``; return the metrics.

    ``plot_style`` is the ``plot_style`` block of the configuration (keys of
    :class:`PlotStyle`); None takes the defaults of :class:`PlotStyle`. ``baselines`` names
    observers that the evaluation compares with the model on the same events.
    """
    style = PlotStyle.from_config(plot_style) if plot_style is not None else None
    log.info("Predicting the %s split", split)
    predictions = predict_split(trainer, task, datamodule, split)
    train_predictions = None
    if split != "train":
        log.info("Predicting the train split for the overtraining check")
        train_predictions = predict_split(trainer, task, datamodule, "train")
    return run_evaluation(
        task.task_type,
        predictions,
        datamodule,
        output_dir,
        loggers,
        train_predictions,
        split=split,
        style=style,
        step=trainer.global_step,
        baselines=baselines,
    )
