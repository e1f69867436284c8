"""Checkpoint writing that never leaves a truncated checkpoint behind."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from .atomic_write import atomic_output


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file in its own folder, flushes it to disk and
    renames it onto the target, so a crash or a full disk leaves the previous checkpoint intact.

    Lightning's own writer (2.6) stages local files in the system temporary folder and moves
    them from there, which is a copy, not an atomic rename, when that folder is on another file
    system. Remote URLs (``s3://`` and the like) go through Lightning's writer unchanged.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        if "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        if storage_options is not None:
            msg = (
                f"{type(self).__name__} takes no storage_options for local files, got "
                f"{storage_options!r}"
            )
            raise TypeError(msg)
        with atomic_output(Path(path)) as temporary, temporary.open("wb") as file:
            torch.save(checkpoint, file)
            file.flush()
            os.fsync(file.fileno())
