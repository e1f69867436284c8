"""A shuffle buffer that mixes samples across the chunks of a stream."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .event_block import EventBlock

# Number of blocks the buffer may reference before it copies its pending samples into one
# block. The bound keeps memory flat when each block contributes only a few pending samples.
MAX_PARTS = 4


class ShuffleBuffer:
    """Holds back about ``capacity`` samples and emits batches of ``batch_size`` samples.

    Every time a block arrives, the pending samples and the block's samples are permuted
    together and all but ``capacity`` of them leave in batches, so each batch mixes the new
    block with earlier ones. Pending samples stay in their blocks as row indices; a sample is
    copied once, into the batches that it leaves with. Without a random generator the samples
    leave in arrival order.
    """

    def __init__(self, batch_size: int, capacity: int, rng: np.random.Generator | None) -> None:
        self.batch_size = batch_size
        self.capacity = capacity
        self.rng = rng
        self.parts: list[tuple[EventBlock, np.ndarray]] = []

    def __len__(self) -> int:
        return sum(len(rows) for _, rows in self.parts)

    def add(self, block: EventBlock) -> Iterator[EventBlock]:
        """Add ``block`` and yield the batches that leave."""
        yield from self.batches(self.add_run(block))

    def flush(self) -> Iterator[EventBlock]:
        """Yield all pending samples in batches; the last one may be short."""
        yield from self.batches(self.flush_run())

    def add_run(self, block: EventBlock) -> EventBlock | None:
        """Add ``block`` and return the samples that leave as one block of whole batches, or
        None when none leave. The batches are its consecutive slices (see :meth:`batches`)."""
        if len(block) == 0:
            return None
        self.parts.append((block, np.arange(len(block))))
        n_batches = max(0, (len(self) - self.capacity) // self.batch_size)
        return self._leave(n_batches * self.batch_size) if n_batches > 0 else None

    def flush_run(self) -> EventBlock | None:
        """Return all pending samples as one block, or None when there are none."""
        return self._leave(len(self)) if self.parts else None

    def batches(self, run: EventBlock | None) -> Iterator[EventBlock]:
        """Yield the batches of a run, as views."""
        if run is None:
            return
        for start in range(0, len(run), self.batch_size):
            yield run.take(slice(start, start + self.batch_size))

    def _leave(self, count: int) -> EventBlock:
        total = len(self)
        if self.rng is None:
            leaving_positions = np.arange(count)
        else:
            # A random sample in random order: about 4 times cheaper than a permutation of all
            # pending samples when half of them leave.
            leaving_positions = self.rng.choice(total, count, replace=False)
        lengths = [len(rows) for _, rows in self.parts]
        # The part of each pending sample, by lookup (cheaper than a search per sample).
        part_of = np.repeat(np.arange(len(lengths), dtype=np.int16), lengths)
        offsets = np.cumsum([0, *lengths])
        # One gather for all leaving samples; the batches are views into it.
        leaving = self._gather(leaving_positions, part_of[leaving_positions], offsets)
        # The staying samples in their original order, from a mask rather than a sort.
        stays = np.ones(total, dtype=bool)
        stays[leaving_positions] = False
        staying = np.flatnonzero(stays)
        rest = self._select(staying, part_of[staying], offsets)
        self.parts = rest
        if len(rest) > MAX_PARTS:
            self.parts = [(self._take(rest), np.arange(sum(len(r) for _, r in rest)))]
        return leaving

    def _select(
        self, positions: np.ndarray, part_of: np.ndarray, offsets: np.ndarray
    ) -> list[tuple[EventBlock, np.ndarray]]:
        """Return (block, rows) pairs for ``positions`` over all pending samples, which lie in
        the parts ``part_of``."""
        if len(self.parts) == 1:
            block, rows = self.parts[0]
            return [(block, rows[positions])] if len(positions) else []
        return [(block, rows) for block, rows, _ in self._by_part(positions, part_of, offsets)]

    def _gather(
        self, positions: np.ndarray, part_of: np.ndarray, offsets: np.ndarray
    ) -> EventBlock:
        """Return the samples at ``positions`` over all pending samples, in that order, so
        that every batch mixes the parts (for example the new chunk and the samples held back
        from earlier ones)."""
        if self.rng is None or len(self.parts) == 1:
            # Without shuffling, the positions run through the parts in order.
            return self._take(self._select(positions, part_of, offsets))
        by_part = self._by_part(positions, part_of, offsets)
        selected = [(block, rows) for block, rows, _ in by_part]
        return EventBlock.gather(selected, [where for _, _, where in by_part])

    def _by_part(
        self, positions: np.ndarray, part_of: np.ndarray, offsets: np.ndarray
    ) -> list[tuple[EventBlock, np.ndarray, np.ndarray]]:
        """Return, per part that ``positions`` reach, its block, the rows of the block and
        the places of those rows in ``positions``."""
        by_part = []
        for index, (block, rows) in enumerate(self.parts):
            where = np.flatnonzero(part_of == index)
            if len(where):
                by_part.append((block, rows[positions[where] - offsets[index]], where))
        return by_part

    @staticmethod
    def _take(selected: list[tuple[EventBlock, np.ndarray]]) -> EventBlock:
        return EventBlock.gather(selected)
