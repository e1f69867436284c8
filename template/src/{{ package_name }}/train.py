"""The ``train`` command: fit a model, test its best checkpoint and evaluate it.

``train(cfg)`` runs one training from a composed configuration (tests call it with Hydra's
compose API); ``main()`` is the Hydra app behind the console script.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from .configuration import config_dir, save_run_config, warn_outside_project
from .data.datamodule import RootDataModule
from .data.errors import DataError
from .notices import hide_library_notices
from .predictions import evaluate_split
from .trackers import finalize_loggers, instantiate_group, log_run_config
from .user_errors import ConfigurationError, check_accelerator, run_reporting_errors

log = logging.getLogger(__name__)

PREPROCESSING_SIDECAR = "preprocessing.json"
# Trainer arguments that Lightning takes as integers (or null), checked before a run starts.
# Lightning fails on a wrong type only once training has begun, with a bare assert.
INTEGER_TRAINER_KEYS = (
    "max_epochs",
    "min_epochs",
    "max_steps",
    "min_steps",
    "check_val_every_n_epoch",
    "log_every_n_steps",
    "accumulate_grad_batches",
    "num_sanity_val_steps",
)


def train(cfg: DictConfig) -> dict[str, float]:
    """Train, test and evaluate as configured by ``cfg`` (a composed train.yaml); return the
    metrics.

    ``cfg`` is resolved in place first, so the caller sees the run folder that was used.
    The returned metrics are those of the test loop (``test/...``) and, when
    ``cfg.evaluate`` is set, those of the evaluation (``auc``, ``resolution``, ...).
    """
    OmegaConf.resolve(cfg)
    check_trainer_values(cfg.trainer)
    if cfg.get("ckpt_path"):
        check_resume(Path(cfg.ckpt_path), cfg.trainer.get("max_epochs"))
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    save_run_config(cfg, output_dir)
    log.info("Run folder: %s", output_dir.resolve())
    check_accelerator(cfg.trainer.get("accelerator", "auto"))
    L.seed_everything(cfg.seed, workers=True)

    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    check_splits(datamodule)
    task = instantiate(cfg.task, model=instantiate(cfg.model))
    callbacks = instantiate_group(cfg.get("callbacks"))
    loggers = instantiate_group(cfg.get("logger"))
    if not loggers and any(isinstance(c, LearningRateMonitor) for c in callbacks):
        # Lightning rejects the monitor without a logger, and it has nothing to write to.
        log.info("No logger is configured, so the learning-rate monitor is left out")
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]

    failed = True
    try:
        log_run_config(loggers, cfg)
        trainer: Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
        fit(trainer, task, datamodule, cfg.get("ckpt_path"))
        best_checkpoint = _write_sidecar(trainer, datamodule, output_dir)

        metrics: dict[str, float] = {}
        if cfg.get("evaluate", True):
            results = trainer.test(task, datamodule=datamodule, ckpt_path=best_checkpoint)
            metrics.update({name: float(value) for name, value in results[0].items()})
            evaluation_dir = output_dir / "evaluation"
            evaluation = evaluate_split(
                trainer,
                task,
                datamodule,
                evaluation_dir,
                loggers,
                plot_style=cfg.get("plot_style"),
                baselines=cfg.get("baselines", ()),
            )
            metrics.update(evaluation)
            log.info(
                "Evaluation outputs (metrics.json, plots/, predictions.root): %s",
                evaluation_dir.resolve(),
            )
        failed = False
    finally:
        finalize_loggers(loggers, failed=failed)
    return metrics


def fit(
    trainer: Trainer, task: LightningModule, datamodule: RootDataModule, ckpt_path: str | None
) -> None:
    """Run ``trainer.fit``. Raise ConfigurationError when the checkpoint to resume from
    contains the weights of another model or input shape."""
    try:
        trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path)
    except RuntimeError as error:
        if not ckpt_path or "loading state_dict" not in str(error):
            raise
        # torch lists the mismatched parameters on the lines after its first one.
        details = [line.strip() for line in str(error).splitlines()[1:] if line.strip()]
        first = details[0] if details else str(error)
        msg = (
            f"checkpoint {ckpt_path} does not fit the configured model ({first}); resume with "
            "the experiment, model and data of the run that wrote it, as in its config.yaml"
        )
        raise ConfigurationError(msg) from error


def check_trainer_values(trainer: DictConfig) -> None:
    """Raise ConfigurationError when an argument of INTEGER_TRAINER_KEYS is not an integer or
    ``gradient_clip_val`` is not a number."""
    for key in INTEGER_TRAINER_KEYS:
        value = trainer.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            msg = f"trainer.{key} must be an integer, got {value!r}; e.g. trainer.{key}=10"
            raise ConfigurationError(msg)
    clip = trainer.get("gradient_clip_val")
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, int | float)):
        msg = f"trainer.gradient_clip_val must be a number or null, got {clip!r}"
        raise ConfigurationError(msg)


def check_splits(datamodule: RootDataModule) -> None:
    """Raise DataError when the validation or test split is known to be empty. Early stopping
    and the best checkpoint need the validation loss, and the evaluation needs test events.

    A random split with a fraction of 0 is empty in both loading modes. In stream mode the
    size of a modulo split is known only after reading it, so it is not checked here.
    """
    split = datamodule.config.split
    fractions = {"val": split.val_fraction, "test": split.test_fraction}
    for name, fraction in fractions.items():
        if split.method == "random" and fraction <= 0:
            detail = f"data.split.{name}_fraction is {fraction}"
            fix = f"set data.split.{name}_fraction above 0"
        elif datamodule.config.loading.mode == "memory" and datamodule.split_size(name) == 0:
            detail = f"no selected event falls into it ({split.method} split)"
            fix = "check the key, k and fold of the split and data.selection"
        else:
            continue
        role = "early stopping and the best checkpoint" if name == "val" else "the evaluation"
        msg = f"the {name} split is empty: {detail}; it is needed for {role}, so {fix}"
        raise DataError(msg)


def check_resume(ckpt_path: Path, max_epochs: int | None) -> None:
    """Raise ConfigurationError when ``ckpt_path`` is missing or has already trained
    ``max_epochs`` epochs, so that resuming it would train nothing."""
    if not ckpt_path.is_file():
        msg = f"checkpoint {ckpt_path} does not exist; check ckpt_path"
        raise ConfigurationError(msg)
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    finished = int(checkpoint.get("epoch", -1)) + 1
    if max_epochs is not None and max_epochs >= 0 and finished >= max_epochs:
        msg = (
            f"checkpoint {ckpt_path} has already trained {finished} epochs and "
            f"trainer.max_epochs is {max_epochs}; raise trainer.max_epochs to train further"
        )
        raise ConfigurationError(msg)


def _write_sidecar(trainer: Trainer, datamodule: RootDataModule, output_dir: Path) -> str | None:
    """Write the preprocessing JSON next to the checkpoints and return the best checkpoint.

    Returns None when no checkpoint was saved, so the test uses the weights in memory.
    """
    callback = trainer.checkpoint_callback
    checkpoint_dir = output_dir / "checkpoints"
    best = None
    if isinstance(callback, ModelCheckpoint) and callback.dirpath:
        checkpoint_dir = Path(callback.dirpath)
        best = callback.best_model_path or None
    datamodule.preprocessor.to_json(checkpoint_dir / PREPROCESSING_SIDECAR)
    if best is None:
        log.warning("No checkpoint was saved; testing and evaluating the final weights")
    else:
        log.info("Best checkpoint: %s", Path(best).resolve())
    return best


def _train_app(cfg: DictConfig) -> None:
    hide_library_notices()
    warn_outside_project()
    # Hydra decides the run folder (one per job in a multirun); the run writes everything there.
    cfg.paths.output_dir = HydraConfig.get().runtime.output_dir
    run_reporting_errors(train, cfg)


def main() -> None:
    """Entry point of the ``train`` command (Hydra command-line overrides apply)."""
    app = hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
    app(_train_app)()


if __name__ == "__main__":
    main()
