"""Hide library notices that ask nothing of the user from the output of the commands:
advertising, and deprecations inside the libraries themselves."""

from __future__ import annotations

import logging
import warnings

# Lightning logs its rank-zero messages through one of these two loggers.
LIGHTNING_RANK_ZERO_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
)


def hide_library_notices() -> None:
    """Hide Lightning's tip about its cloud logger and a deprecation inside Lightning."""
    # Lightning 2.6 calls a torch.utils._pytree API that PyTorch 2.10 and newer deprecate.
    deprecation = r"`isinstance\(treespec, LeafSpec\)` is deprecated"
    warnings.filterwarnings("ignore", message=deprecation, category=FutureWarning)
    for name in LIGHTNING_RANK_ZERO_LOGGERS:
        logging.getLogger(name).addFilter(_is_not_a_tip)


def _is_not_a_tip(record: logging.LogRecord) -> bool:
    return "Tip:" not in record.getMessage()
