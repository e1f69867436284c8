"""Location of the Hydra configuration, the OmegaConf resolvers it uses, and the run config
that every training run stores next to its checkpoints."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Sized
from datetime import datetime
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from .atomic_write import atomic_output
from .user_errors import ConfigurationError

# configs/ at the top of the project, two levels above this file in the src layout.
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
# File name of the resolved configuration in every run directory.
RUN_CONFIG_NAME = "config.yaml"

log = logging.getLogger(__name__)

_issued_run_ids: set[str] = set()


def config_dir() -> Path:
    """Return the folder that contains train.yaml and evaluate.yaml.

    Raises FileNotFoundError when the package does not run from its project folder (an
    installed wheel has no configs/), with what to do instead.
    """
    if not (CONFIG_DIR / "train.yaml").is_file():
        msg = (
            f"no Hydra configuration at {CONFIG_DIR}: install the project in editable mode "
            "(pip install -e .) from its folder, or pass --config-dir to the train/evaluate "
            "command"
        )
        raise FileNotFoundError(msg)
    return CONFIG_DIR


def warn_outside_project() -> None:
    """Warn when a command runs outside the project folder whose configs/ it reads, because
    the data and log folders are then relative to another folder (unless PROJECT_ROOT is set)."""
    project = CONFIG_DIR.parent
    if "PROJECT_ROOT" in os.environ or Path.cwd().resolve() == project:
        return
    log.warning(
        "Running in %s, but the configuration comes from the project in %s: data and logs "
        "are looked for in the current folder. Run the command in %s, or set PROJECT_ROOT=%s",
        Path.cwd(),
        project,
        project,
        project,
    )


def count_items(items: Sized | None) -> int:
    """Return the number of items of a config list; a missing (null) list has none."""
    return 0 if items is None else len(items)


def count_logits(classes: Sized) -> int:
    """Return the number of model outputs for ``classes``: one logit for two classes."""
    n_classes = len(classes)
    return 1 if n_classes == 2 else n_classes


def new_run_id() -> str:
    """Return a run name that no other run can get, even one started in the same second:
    local time, process id and a random suffix, e.g. 2025-01-31_14-05-09_4242_9f3c1a.

    The process id separates concurrent processes on one machine, the random suffix those on
    machines that share a log folder, and a suffix is never reused within one process.
    """
    while True:
        run_id = f"{datetime.now():%Y-%m-%d_%H-%M-%S}_{os.getpid()}_{secrets.token_hex(3)}"
        if run_id not in _issued_run_ids:
            _issued_run_ids.add(run_id)
            return run_id


def tracker_run_name(job_name: str, run_id: str, output_dir: str) -> str:
    """Return the name of a run for an experiment tracker, such as
    train-2025-01-31_14-05-09_4242_9f3c1a-3.

    The name joins the job and the run id. In a multirun, all jobs share the run id of their
    sweep, so the name ends with the job number (the name of the job's folder)."""
    name = f"{job_name}-{run_id}"
    folder = Path(output_dir).name
    return name if folder == run_id else f"{name}-{folder}"


def register_resolvers() -> None:
    """Register ``len``, ``n_logits``, ``run_id`` and ``tracker_run_name`` with OmegaConf
    (again is harmless).

    ``run_id`` is cached per config object, so every interpolation of it within one
    configuration names the same run. Each newly composed configuration gets a new one,
    except the jobs of a multirun, which Hydra gives the cached values of their sweep.
    """
    OmegaConf.register_new_resolver("len", count_items, replace=True)
    OmegaConf.register_new_resolver("n_logits", count_logits, replace=True)
    OmegaConf.register_new_resolver("run_id", new_run_id, use_cache=True, replace=True)
    OmegaConf.register_new_resolver("tracker_run_name", tracker_run_name, replace=True)


def save_run_config(cfg: DictConfig, run_dir: Path) -> Path:
    """Write ``cfg`` (resolved) as config.yaml into ``run_dir`` and return its path."""
    path = Path(run_dir) / RUN_CONFIG_NAME
    with atomic_output(path) as temporary:
        OmegaConf.save(cfg, temporary, resolve=True)
    return path


def load_run_config(run_dir: Path) -> DictConfig:
    """Read the config.yaml that training stored in ``run_dir``."""
    path = Path(run_dir) / RUN_CONFIG_NAME
    if not path.is_file():
        msg = (
            f"no {RUN_CONFIG_NAME} in the run directory {run_dir}; point ckpt_path at a "
            "checkpoint in <run>/checkpoints/ of a run written by the train command"
        )
        raise ConfigurationError(msg)
    cfg = OmegaConf.load(path)
    if not isinstance(cfg, DictConfig):
        msg = f"{path} does not hold a mapping; it is not a run configuration"
        raise TypeError(msg)
    return cfg


register_resolvers()
