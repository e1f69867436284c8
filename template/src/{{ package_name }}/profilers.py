"""A Lightning profiler that records nothing, at less cost per hook call than the default."""

from __future__ import annotations

from contextlib import nullcontext

from lightning.pytorch.profilers import PassThroughProfiler

# nullcontext has no state, so one instance serves every call, nested ones included.
_NO_OP_CONTEXT = nullcontext()


class NoOpProfiler(PassThroughProfiler):
    """Lightning's default profiler (``PassThroughProfiler``) with a cheaper ``profile``.

    The Trainer wraps every hook call in ``profiler.profile(name)``, about 80 times per
    training step with the rendered callbacks (Lightning 2.6). The inherited context manager
    is a generator and costs about 0.8 µs per call on an AMD EPYC core. A shared
    ``nullcontext`` costs about a fifth of that. To profile for real, replace this profiler:
    ``trainer.profiler=simple`` (or ``advanced``, ``pytorch``).
    """

    # The base class declares a generator-based context manager, but any context manager will do.
    def profile(self, action_name: str) -> nullcontext[None]:  # type: ignore[override]
        del action_name
        return _NO_OP_CONTEXT
