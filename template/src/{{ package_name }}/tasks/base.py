"""Shared part of the supervised tasks: model inputs from the batch, the event-weighted loss,
epoch-level logging, and the optimizer and scheduler from the configuration."""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import torch
from lightning.pytorch import LightningModule
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from ..data.errors import DataError

Batch = Mapping[str, Tensor]
OptimizerFactory = Callable[[Iterable[nn.Parameter]], Optimizer]
SchedulerFactory = Callable[[Optimizer], LRScheduler | ReduceLROnPlateau]

# Batch keys a model's forward may take; the others are targets, weights and bookkeeping.
MODEL_INPUTS = ("features", "objects", "mask")
# Metric that schedulers such as ReduceLROnPlateau follow; the validation loop logs it.
SCHEDULER_MONITOR = "val/loss"


def model_input_keys(model: nn.Module) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Return the batch keys that ``model.forward`` accepts, and those among them it requires.

    Raises TypeError when ``forward`` requires an argument that no batch provides.
    """
    parameters = inspect.signature(model.forward).parameters
    accepted = tuple(name for name in parameters if name in MODEL_INPUTS)
    required = tuple(
        name for name in accepted if parameters[name].default is inspect.Parameter.empty
    )
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    unknown = [
        name
        for name, parameter in parameters.items()
        if name not in MODEL_INPUTS
        and parameter.default is inspect.Parameter.empty
        and parameter.kind not in variadic
    ]
    if unknown:
        msg = (
            f"{type(model).__name__}.forward requires {unknown}, which no batch provides; "
            f"a model's forward takes some of {', '.join(MODEL_INPUTS)} as keyword arguments"
        )
        raise TypeError(msg)
    return accepted, required


class SupervisedTask(LightningModule, ABC):
    """Trains ``model`` on batches of the data module with an event-weighted loss.

    The loss of a batch is sum(w * l) / sum(|w|) with w = ``weight * balance_weight``, so its
    scale does not depend on the overall normalisation of the event weights (cross section
    times luminosity), and negative weights (e.g. from NLO generators) lower the loss as they
    should without making the normalisation negative.

    Losses are summed over the epoch on the device and logged once per epoch, because a
    ``self.log`` call on every step costs a noticeable share of the step time of small models.
    ``log_every_step`` adds the loss of each step (every ``trainer.log_every_n_steps``).
    """

    task_type: ClassVar[str]

    def __init__(
        self,
        model: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        log_every_step: bool = False,
    ) -> None:
        super().__init__()
        self.model = model
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.log_every_step = log_every_step
        self.input_keys, self.required_keys = model_input_keys(model)
        # Per stage: sum of w * l and sum of |w| since the start of the epoch.
        self._loss_sums: dict[str, tuple[Tensor, Tensor]] = {}

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning 2.6 sets _current_fx_name around each of its hook calls, about 40 times per
        # training step. Its value is always a string or None, so the checks of
        # nn.Module.__setattr__ for parameters, buffers and modules (about 1 µs on an AMD EPYC
        # core) are skipped with a plain attribute write.
        if name == "_current_fx_name":
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def forward(self, batch: Batch) -> Tensor:
        """Run the model on the batch keys its ``forward`` accepts."""
        for key in self.required_keys:
            if key not in batch:
                msg = (
                    f"{type(self.model).__name__} needs the batch key {key!r}, but the batch "
                    f"has only {sorted(batch)}; check data.inputs in the data config"
                )
                raise KeyError(msg)
        inputs = {key: batch[key] for key in self.input_keys if key in batch}
        outputs: Tensor = self.model(**inputs)
        return outputs

    # Hooks of the concrete tasks.

    @abstractmethod
    def event_losses(self, outputs: Tensor, batch: Batch) -> Tensor:
        """Return the unweighted loss of every event (B,)."""

    @abstractmethod
    def predictions(self, outputs: Tensor) -> dict[str, Tensor]:
        """Return what ``predict_step`` reports for the model outputs."""

    def update_metrics(self, stage: str, outputs: Tensor, batch: Batch) -> None:
        """Collect what the stage's metrics need from one batch."""

    def compute_metrics(self, stage: str) -> dict[str, Tensor]:
        """Return the stage's metrics over the epoch and forget the collected batches."""
        del stage
        return {}

    # Lightning steps.

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        del batch_idx
        loss = self._weighted_loss("train", self(batch), batch)
        if self.log_every_step and self._writes_step_logs():
            self.log("train/loss_step", loss, on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        del batch_idx
        outputs = self(batch)
        self._weighted_loss("val", outputs, batch)
        self.update_metrics("val", outputs, batch)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        del batch_idx
        outputs = self(batch)
        self._weighted_loss("test", outputs, batch)
        self.update_metrics("test", outputs, batch)

    def predict_step(self, batch: Batch, batch_idx: int) -> dict[str, Tensor]:
        """Return the predictions with the batch's ``index`` (and ``target`` and ``weight``
        where the batch has them), on the CPU."""
        del batch_idx
        result = self.predictions(self(batch))
        result["index"] = batch["index"]
        for key in ("target", "weight"):
            if key in batch:
                result[key] = batch[key]
        return {key: value.detach().cpu() for key, value in result.items()}

    def on_train_epoch_end(self) -> None:
        self._log_epoch("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": scheduler,
                "monitor": SCHEDULER_MONITOR,
                "interval": "epoch",
            },
        }

    # Helpers.

    def _writes_step_logs(self) -> bool:
        """Return whether the loggers write step-level metrics after the current training step.

        Lightning 2.6 writes them every ``trainer.log_every_n_steps`` optimizer steps and once
        training should stop. ``self.log`` costs about 0.3 ms of CPU time per call (measured on
        an AMD EPYC core), so skipping it on the steps that are not written keeps
        ``log_every_step`` affordable for small models.

        NOTE: when a callback requests the stop after ``training_step`` (in
        ``on_train_batch_end``), Lightning writes that step's metrics without this loss.
        """
        trainer = self.trainer
        # Lightning 2.6 sets log_every_n_steps in Trainer.__init__ without declaring it.
        every_n_steps: int = trainer.log_every_n_steps  # type: ignore[attr-defined]
        if every_n_steps == 0:
            return False
        return (trainer.global_step + 1) % every_n_steps == 0 or trainer.should_stop

    def _weighted_loss(self, stage: str, outputs: Tensor, batch: Batch) -> Tensor:
        weights = batch["weight"] * batch["balance_weight"]
        weighted_sum = (self.event_losses(outputs, batch) * weights).sum()
        normalisation = weights.abs().sum()
        sums = self._loss_sums.get(stage)
        if sums is None:
            self._loss_sums[stage] = (weighted_sum.detach(), normalisation)
        else:
            self._loss_sums[stage] = (sums[0] + weighted_sum.detach(), sums[1] + normalisation)
        return weighted_sum / normalisation.clamp_min(torch.finfo(weights.dtype).tiny)

    def _log_epoch(self, stage: str) -> None:
        sums = self._loss_sums.pop(stage, None)
        if sums is None and stage in ("val", "test") and not self.trainer.sanity_checking:
            # A streaming split's size is known only once it has been read, so an empty one
            # shows here, after a whole pass over it.
            msg = (
                f"the {stage} split gave no events in a whole {stage} epoch; check data.split "
                "(the key, k and fold of a modulo split) and data.selection"
            )
            raise DataError(msg)
        metrics = self.compute_metrics(stage)
        if sums is not None:
            # Sum over processes before dividing, so every event counts once with DDP.
            weighted_sum = self.trainer.strategy.reduce(sums[0], reduce_op="sum")
            normalisation = self.trainer.strategy.reduce(sums[1], reduce_op="sum")
            metrics[f"{stage}/loss"] = weighted_sum / normalisation
        for name, value in metrics.items():
            self.log(name, value, prog_bar=name.endswith("/loss"))
