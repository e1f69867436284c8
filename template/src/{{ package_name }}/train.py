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
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from .configuration import config_dir, save_run_config, warn_outside_project
from .data.datamodule import RootDataModule
from .notices import hide_library_notices
from .predictions import evaluate_split
from .trackers import finalize_loggers, instantiate_group, log_run_config
from .user_errors import ConfigurationError, check_accelerator, run_reporting_errors

log = logging.getLogger(__name__)

PREPROCESSING_SIDECAR = "preprocessing.json"


def train(cfg: DictConfig) -> dict[str, float]:
    """Train, test and evaluate as configured by ``cfg`` (a composed train.yaml); return the
    metrics.

    ``cfg`` is resolved in place first, so the caller sees the run folder that was used.
    The returned metrics are those of the test loop (``test/...``) and, when
    ``cfg.evaluate`` is set, those of the evaluation (``auc``, ``resolution``, ...).
    """
    OmegaConf.resolve(cfg)
    if cfg.get("ckpt_path"):
        check_resume(Path(cfg.ckpt_path), cfg.trainer.get("max_epochs"))
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    save_run_config(cfg, output_dir)
    log.info("Run folder: %s", output_dir.resolve())
    check_accelerator(cfg.trainer.get("accelerator", "auto"))
    L.seed_everything(cfg.seed, workers=True)

    datamodule = instantiate(cfg.data)
    task = instantiate(cfg.task, model=instantiate(cfg.model))
    callbacks = instantiate_group(cfg.get("callbacks"))
    loggers = instantiate_group(cfg.get("logger"))

    failed = True
    try:
        log_run_config(loggers, cfg)
        trainer: Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
        trainer.fit(task, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
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
