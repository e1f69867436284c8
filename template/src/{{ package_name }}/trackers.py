"""Experiment trackers (Lightning loggers) of a run: built from the config, given the run
configuration, and closed at the end of the run whether it succeeded or not."""

from __future__ import annotations

import logging
from typing import Any

from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger, WandbLogger
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry of a config group such as ``callbacks`` or ``logger``.

    Entries set to null are skipped, so ``callbacks.early_stopping=null`` on the command line
    drops one callback.
    """
    if group is None:
        return []
    return [instantiate(entry) for entry in group.values() if entry is not None]


def log_run_config(loggers: list[Logger], cfg: DictConfig) -> None:
    """Send the resolved run configuration to every tracker as hyperparameters."""
    container = OmegaConf.to_container(cfg, resolve=True)
    if not isinstance(container, dict):
        msg = "the run configuration must be a mapping"
        raise TypeError(msg)
    hyperparameters = {str(key): value for key, value in container.items()}
    for logger in loggers:
        logger.log_hyperparams(hyperparameters)


def finalize_loggers(loggers: list[Logger], *, failed: bool) -> None:
    """Close the tracker runs with the status of the run ("success" or "failed").

    Lightning finalizes its loggers at the end of fit and test already, but evaluation logs
    to them afterwards, and a W&B run stays open until ``wandb.finish``: another run in the
    same process would otherwise log into it.
    """
    status = "failed" if failed else "success"
    for logger in loggers:
        try:
            logger.finalize(status)
        except Exception:
            # Closing the other trackers matters more than this one's error, which is logged.
            log.exception("Could not finalize %s", type(logger).__name__)
        if isinstance(logger, WandbLogger):
            import wandb  # noqa: PLC0415 (only projects that log to W&B install it)

            wandb.finish(exit_code=int(failed))
