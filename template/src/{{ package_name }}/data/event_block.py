"""Samples as aligned NumPy arrays: the unit that reading, splitting and batching pass on."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class EventBlock:
    """Samples as aligned NumPy arrays, before or after preprocessing.

    ``entry`` is the dataset-wide entry id: the file's entry offset plus the entry number, so
    every event has a unique id. In per-object mode all objects of an event share it.
    """

    features: np.ndarray  # float32 (n, F); F is 0 when the dataset declares no features
    objects: np.ndarray | None  # float32 (n, N, C)
    mask: np.ndarray | None  # bool (n, N)
    target: np.ndarray  # int64 (n,) class index, or float32 (n, T)
    weight: np.ndarray  # float32 (n,)
    entry: np.ndarray  # int64 (n,)
    split: np.ndarray  # int8 (n,), codes from splitting
    source: np.ndarray  # int16 (n,), index into data.sources
    observers: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.entry)

    def _apply(
        self, function: Callable[[Callable[[EventBlock], np.ndarray]], np.ndarray]
    ) -> EventBlock:
        """Build a block whose arrays are ``function(getter)`` for each array of this one."""

        def optional(getter: Callable[[EventBlock], np.ndarray | None]) -> np.ndarray | None:
            return None if getter(self) is None else function(getter)  # type: ignore[arg-type]

        return EventBlock(
            features=function(lambda b: b.features),
            objects=optional(lambda b: b.objects),
            mask=optional(lambda b: b.mask),
            target=function(lambda b: b.target),
            weight=function(lambda b: b.weight),
            entry=function(lambda b: b.entry),
            split=function(lambda b: b.split),
            source=function(lambda b: b.source),
            observers={name: function(_observer_getter(name)) for name in self.observers},
        )

    def take(self, index: np.ndarray | slice) -> EventBlock:
        """Return the samples at ``index`` (a slice, integer positions or a boolean mask):
        views for a slice, copies otherwise."""
        if isinstance(index, slice):
            # Written out, because streaming slices every batch and this is its hot path.
            return EventBlock(
                features=self.features[index],
                objects=None if self.objects is None else self.objects[index],
                mask=None if self.mask is None else self.mask[index],
                target=self.target[index],
                weight=self.weight[index],
                entry=self.entry[index],
                split=self.split[index],
                source=self.source[index],
                observers={name: values[index] for name, values in self.observers.items()},
            )
        if index.dtype == bool:
            index = np.flatnonzero(index)
        # np.take copies rows several times faster than fancy indexing for 3-D arrays.
        return self._apply(lambda get: np.take(get(self), index, axis=0))

    @staticmethod
    def gather(
        selected: Sequence[tuple[EventBlock, np.ndarray]],
        destinations: Sequence[np.ndarray] | None = None,
    ) -> EventBlock:
        """Return the rows ``rows`` of each ``(block, rows)`` pair in one block, copying each
        row once: one pair after the other, or with ``destinations``, at the given positions
        of the result (one index array per pair, together covering every position once)."""
        total = sum(len(rows) for _, rows in selected)
        first = selected[0][0]

        def fill(get: Callable[[EventBlock], np.ndarray]) -> np.ndarray:
            template = get(first)
            out = np.empty((total, *template.shape[1:]), dtype=template.dtype)
            if destinations is not None:
                if out.size == 0:
                    return out  # no bytes to copy, as for features of width 0
                # Rows as opaque items: np.put of whole rows is about a third faster than
                # fancy assignment into a 3-D array. out is C-contiguous, so out_rows views it.
                out_rows = _as_rows(out)
                for (block, rows), where in zip(selected, destinations, strict=True):
                    np.put(out_rows, where, np.take(_as_rows(get(block)), rows))
                return out
            start = 0
            for block, rows in selected:
                stop = start + len(rows)
                np.take(get(block), rows, axis=0, out=out[start:stop], mode="clip")
                start = stop
            return out

        return first._apply(fill)

    @staticmethod
    def concatenate(blocks: Sequence[EventBlock]) -> EventBlock:
        """Return the samples of all ``blocks`` in one block."""
        return blocks[0]._apply(lambda get: np.concatenate([get(b) for b in blocks]))


def _as_rows(array: np.ndarray) -> np.ndarray:
    """Return ``array`` as a 1-D array of one opaque item per row: a view when ``array`` is
    C-contiguous, a copy otherwise."""
    if array.ndim == 1:
        return array
    row_bytes = array.itemsize * int(np.prod(array.shape[1:]))
    contiguous = np.ascontiguousarray(array)
    return contiguous.reshape(len(array), -1).view(np.dtype((np.void, row_bytes))).ravel()


def _observer_getter(name: str) -> Callable[[EventBlock], np.ndarray]:
    def get(block: EventBlock) -> np.ndarray:
        return block.observers[name]

    return get
