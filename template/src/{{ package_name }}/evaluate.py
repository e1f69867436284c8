"""The ``evaluate`` command: evaluate a checkpoint of a training run on one split.

``evaluate(cfg)`` runs from a composed evaluate.yaml (tests call it with Hydra's compose API);
``main()`` is the Hydra app behind the console script. The data, model and task are rebuilt
from the config.yaml of the training run, and the weights and the fitted preprocessing come
from the checkpoint, so the model gets its inputs exactly as in training.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import cast

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch import Trainer
from omegaconf import DictConfig, OmegaConf

from .configuration import config_dir, load_run_config, save_run_config, warn_outside_project
from .data.splitting import SPLIT_NAMES
from .notices import hide_library_notices
from .predictions import evaluate_split
from .trackers import finalize_loggers, instantiate_group, log_run_config
from .user_errors import ConfigurationError, check_accelerator, run_reporting_errors

log = logging.getLogger(__name__)

BEST_CHECKPOINT = "best.ckpt"


def find_latest_checkpoint(log_dir: Path) -> Path:
    """Return best.ckpt of the training run under ``log_dir``/train that was written last."""
    train_dir = Path(log_dir) / "train"
    candidates = [
        *train_dir.glob(f"runs/*/checkpoints/{BEST_CHECKPOINT}"),
        *train_dir.glob(f"multiruns/*/*/checkpoints/{BEST_CHECKPOINT}"),
    ]
    if not candidates:
        msg = (
            f"no {BEST_CHECKPOINT} under {train_dir.resolve()}: train a model first, or pass "
            "ckpt_path=<run>/checkpoints/<file>.ckpt"
        )
        raise ConfigurationError(msg)
    return max(candidates, key=lambda path: path.stat().st_mtime)


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Evaluate the checkpoint that ``cfg`` (a composed evaluate.yaml) names; return the
    metrics written to metrics.json in the run folder.

    ``cfg`` is resolved in place first, so the caller sees the run folder that was used.
    """
    OmegaConf.resolve(cfg)
    if cfg.split not in SPLIT_NAMES:
        msg = f"split={cfg.split} is not a split; valid splits: {', '.join(SPLIT_NAMES)}"
        raise ConfigurationError(msg)
    if cfg.get("ckpt_path"):
        ckpt_path = Path(cfg.ckpt_path)
    else:
        ckpt_path = find_latest_checkpoint(Path(cfg.paths.log_dir))
    if not ckpt_path.is_file():
        msg = f"checkpoint {ckpt_path} does not exist; check ckpt_path"
        raise ConfigurationError(msg)
    log.info("Evaluating %s on the %s split", ckpt_path.resolve(), cfg.split)
    run_dir = ckpt_path.parent.parent
    run_cfg = load_run_config(run_dir)
    data_cfg = _data_config(cfg, run_cfg, run_dir)

    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    cfg.ckpt_path = str(ckpt_path)
    save_run_config(cfg, output_dir)

    check_accelerator(cfg.trainer.get("accelerator", "auto"))
    datamodule = instantiate(data_cfg)
    task = instantiate(run_cfg.task, model=instantiate(run_cfg.model))
    # The checkpoint contains Python containers and tensors only (the preprocessing state is
    # plain JSON-like data), so the restricted unpickler of weights_only loads it.
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    task.load_state_dict(checkpoint["state_dict"])
    datamodule_key = type(datamodule).__qualname__
    if datamodule_key not in checkpoint:
        msg = (
            f"checkpoint {ckpt_path} has no {datamodule_key} state (the fitted preprocessing); "
            "evaluate a checkpoint written by the train command of this project"
        )
        raise ConfigurationError(msg)
    datamodule.load_state_dict(checkpoint[datamodule_key])
    datamodule.setup("predict")

    loggers = instantiate_group(cfg.get("logger"))
    failed = True
    try:
        log_run_config(loggers, cfg)
        trainer: Trainer = instantiate(cfg.trainer, logger=loggers or False)
        metrics = evaluate_split(
            trainer,
            task,
            datamodule,
            output_dir,
            loggers,
            cfg.split,
            _plot_style(cfg, run_cfg),
            # The training run names the baselines, so both evaluations compare the same ones.
            baselines=run_cfg.get("baselines", ()),
        )
        failed = False
    finally:
        finalize_loggers(loggers, failed=failed)
    log.info(
        "Evaluation outputs (metrics.json, plots/, predictions.root): %s", output_dir.resolve()
    )
    return metrics


def _data_config(cfg: DictConfig, run_cfg: DictConfig, run_dir: Path) -> DictConfig:
    """Return the training run's data config with the keys that ``cfg`` sets replaced, such
    as ``+data.loading.mode=stream`` or the paths of moved files.

    Settings of the model or task raise ConfigurationError, because the checkpoint's weights
    fix them."""
    for group in ("model", "task"):
        if cfg.get(group) is not None:
            msg = (
                f"evaluate takes the {group} from the training run ({run_dir / 'config.yaml'}) "
                f"and cannot change it; only data settings can be changed, e.g. "
                "+data.loading.mode=stream"
            )
            raise ConfigurationError(msg)
    if cfg.get("data") is None:
        return cast(DictConfig, run_cfg.data)
    log.info(
        "Data settings that replace those of the training run: %s",
        OmegaConf.to_container(cfg.data),
    )
    return cast(DictConfig, OmegaConf.merge(run_cfg.data, cfg.data))


def _plot_style(cfg: DictConfig, run_cfg: DictConfig) -> DictConfig | None:
    """Return the training run's plot_style with the keys that ``cfg`` sets replaced."""
    styles = [style for style in (run_cfg.get("plot_style"), cfg.get("plot_style")) if style]
    if not styles:
        return None
    # Merging DictConfigs always returns a DictConfig.
    return cast(DictConfig, OmegaConf.merge(*styles))


def _evaluate_app(cfg: DictConfig) -> None:
    hide_library_notices()
    warn_outside_project()
    # Hydra decides the run folder (one per job in a multirun); the run writes everything there.
    cfg.paths.output_dir = HydraConfig.get().runtime.output_dir
    run_reporting_errors(evaluate, cfg)


def main() -> None:
    """Entry point of the ``evaluate`` command (Hydra command-line overrides apply)."""
    app = hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="evaluate")
    app(_evaluate_app)()


if __name__ == "__main__":
    main()
