"""Atomic replacement of output files, so a crash never leaves a half-written output behind."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` and move it onto ``path`` when the block succeeds.

    The temporary file sits in the same folder, so the final rename stays within one file system
    and readers see either the old file or the complete new one. The writer inside the block
    creates the file itself, so it gets the usual permissions (umask), not the private mode
    that ``tempfile.mkstemp`` would set. When the block raises, the temporary file is removed
    and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        yield temporary
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
