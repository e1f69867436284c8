"""Errors in the configuration or the input files, reported to the user without a traceback."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import torch
from hydra.errors import InstantiationException
from omegaconf import DictConfig

from .data.errors import DataError

log = logging.getLogger(__name__)


class ConfigurationError(ValueError):
    """A configuration value that cannot work on this machine."""


def check_accelerator(accelerator: str) -> None:
    """Raise ConfigurationError when ``accelerator`` requests a GPU that PyTorch cannot see."""
    if accelerator in {"gpu", "cuda"} and not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        msg = (
            f"trainer.accelerator={accelerator} but PyTorch {torch.__version__} ({build}) sees no "
            "CUDA device: run with trainer=cpu, or install a CUDA build of PyTorch that matches "
            "the driver (see README.md, Installation)"
        )
        raise ConfigurationError(msg)


def run_reporting_errors(command: Callable[[DictConfig], Any], cfg: DictConfig) -> None:
    """Run ``command(cfg)``; exit with status 1 and the message alone on a user error.

    DataError and ConfigurationError messages name the file, tree, branch, expression or value
    and the fix; a traceback through Lightning would only bury them. The traceback is still
    logged at DEBUG level (``hydra.verbose=true``).
    """
    with _interrupt_recorder() as interrupted:
        _run_reporting_errors(command, cfg)
    if interrupted:
        # Python drops a KeyboardInterrupt raised inside an object's __del__, so the run may
        # have gone on to the end. A shell loop around the command should still stop.
        log.error("interrupted by Ctrl-C; the outputs of this run may be incomplete")
        raise SystemExit(130)


def _run_reporting_errors(command: Callable[[DictConfig], Any], cfg: DictConfig) -> None:
    try:
        command(cfg)
    except (DataError, ConfigurationError) as error:
        log.debug("Traceback of the error below", exc_info=True)
        log.error("%s", error)
        raise SystemExit(1) from None
    except InstantiationException as error:
        # Hydra wraps what a constructor raises, e.g. the data module's checks of its config.
        if not isinstance(error.__cause__, (DataError, ConfigurationError)):
            raise
        log.debug("Traceback of the error below", exc_info=True)
        log.error("%s", error.__cause__)
        raise SystemExit(1) from None


@contextmanager
def _interrupt_recorder() -> Iterator[list[int]]:
    """Record SIGINT (Ctrl-C) while the block runs, in the list it yields. The default
    handler still raises KeyboardInterrupt. Signal handlers exist only in the main thread."""
    received: list[int] = []

    def handle(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        signal.default_int_handler(signum, frame)

    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, previous)
