"""Streaming dataset: reads chunks of entries with uproot while training, in flat memory.

The entries of every file are cut into work units of about ``chunk_size`` entries (at cluster
boundaries where the TTree has them, so no basket is decompressed twice). Each epoch orders the
units so that all files advance at the same pace, which gives every stretch of the stream a
share of every file, then deals them round-robin to the (rank, worker) shards. Every unit is
read by exactly one shard, so every selected sample appears exactly once per epoch whatever
the number of files, chunk size, workers or ranks. A shuffle buffer mixes samples across units.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from .blocks import BlockBuilder, EventBlock
from .datasets import Batch, BatchAssembler
from .reading import read_range
from .sources import TreeFile, open_tree

log = logging.getLogger(__name__)

MAX_OPEN_FILES = 8


@dataclass(frozen=True)
class WorkUnit:
    """Entries ``[entry_start, entry_stop)`` of file number ``file`` of the dataset."""

    file: int
    entry_start: int
    entry_stop: int


def plan_units(
    files: Sequence[TreeFile], chunk_size: int, builder: BlockBuilder
) -> list[list[WorkUnit]]:
    """Cut every file into units of about ``chunk_size`` entries; returns one list per file."""
    plan = []
    for index, tree_file in enumerate(files):
        boundaries = _cluster_boundaries(tree_file, builder.branches(tree_file))
        if boundaries is None:
            edges = [*range(0, tree_file.num_entries, chunk_size), tree_file.num_entries]
        else:
            edges = [0]
            for boundary in boundaries[1:]:
                if boundary - edges[-1] >= chunk_size or boundary == tree_file.num_entries:
                    edges.append(boundary)
        plan.append([WorkUnit(index, a, b) for a, b in itertools.pairwise(edges)])
    return plan


def _cluster_boundaries(tree_file: TreeFile, branches: set[str]) -> list[int] | None:
    """Return the entry numbers at which every branch read starts a new basket (TTree), or
    None when the format gives none (RNTuple)."""
    root_file, tree = open_tree(tree_file.path, tree_file.tree)
    with root_file:
        if not hasattr(tree, "common_entry_offsets"):
            return None
        wanted = branches or {min(tree.keys())}
        offsets = tree.common_entry_offsets(filter_name=lambda name: name in wanted)
        return [int(offset) for offset in offsets]


def order_units(plan: list[list[WorkUnit]], seed: int, epoch: int, shuffle: bool) -> list[WorkUnit]:
    """Return all units in reading order: files advance at the same pace.

    Unit ``k`` of a file with ``n`` units gets the position ``(k + u) / n`` with ``u`` uniform
    in [0, 1) (0.5 without shuffling); sorting by position interleaves the files in proportion
    to their sizes. With shuffling, each file's units are also permuted every epoch.
    """
    rng = np.random.default_rng([seed, epoch])
    keyed = []
    for units in plan:
        order = rng.permutation(len(units)) if shuffle else np.arange(len(units))
        offsets = rng.random(len(units)) if shuffle else np.full(len(units), 0.5)
        for k, (unit_index, offset) in enumerate(zip(order, offsets, strict=True)):
            keyed.append(((k + offset) / len(units), units[unit_index].file, units[unit_index]))
    keyed.sort(key=lambda item: (item[0], item[1]))
    return [unit for _, _, unit in keyed]


def distributed_shard() -> tuple[int, int]:
    """Return ``(rank, world size)`` of torch.distributed, or ``(0, 1)`` outside it."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class ShuffleBuffer:
    """Holds up to ``capacity`` samples and emits random batches of ``batch_size``.

    Each new block is merged with the held samples and the whole buffer is permuted before
    batches are taken, so a batch mixes samples of the new block with earlier ones.
    """

    def __init__(self, batch_size: int, capacity: int, rng: np.random.Generator | None) -> None:
        self.batch_size = batch_size
        self.capacity = capacity
        self.rng = rng
        self.pending: EventBlock | None = None

    def add(self, block: EventBlock) -> Iterator[EventBlock]:
        if len(block) == 0:
            return
        pending = block if self.pending is None else EventBlock.concatenate([self.pending, block])
        if self.rng is not None:
            pending = pending.take(self.rng.permutation(len(pending)))
        n_batches = max(0, (len(pending) - self.capacity) // self.batch_size)
        for index in range(n_batches):
            yield pending.take(slice(index * self.batch_size, (index + 1) * self.batch_size))
        self.pending = pending.take(slice(n_batches * self.batch_size, None))

    def flush(self) -> Iterator[EventBlock]:
        if self.pending is None:
            return
        pending, self.pending = self.pending, None
        if self.rng is not None:
            pending = pending.take(self.rng.permutation(len(pending)))
        for start in range(0, len(pending), self.batch_size):
            yield pending.take(slice(start, start + self.batch_size))


class StreamingDataset(IterableDataset[Batch]):
    """Batches of one split, read from the files as they are consumed.

    ``ordered=True`` reads units in file order without shuffling and must run in one process:
    ``index`` is then the row of the sample in its split, as for the in-memory dataset.
    Otherwise ``index`` is the dataset-wide entry id of the event, unique per event, because a
    worker cannot know the rows that other workers produce. ``rank`` and ``world_size`` default
    to those of torch.distributed.
    """

    def __init__(
        self,
        builder: BlockBuilder,
        files: Sequence[TreeFile],
        split_code: int,
        assembler: BatchAssembler,
        batch_size: int,
        *,
        shuffle: bool,
        ordered: bool = False,
        keep_observers: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__()
        loading = builder.config.loading
        self.builder = builder
        self.files = list(files)
        self.split_code = split_code
        self.assembler = assembler
        self.batch_size = batch_size
        self.shuffle = shuffle and not ordered
        self.ordered = ordered
        self.keep_observers = keep_observers
        self.chunk_size = loading.chunk_size
        self.shuffle_buffer = loading.shuffle_buffer if self.shuffle else 0
        self.seed = loading.seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.plan = plan_units(self.files, self.chunk_size, builder)

    def _shard(self) -> tuple[int, int]:
        rank, world_size = distributed_shard()
        rank = rank if self.rank is None else self.rank
        world_size = world_size if self.world_size is None else self.world_size
        worker = get_worker_info()
        worker_id, n_workers = (0, 1) if worker is None else (worker.id, worker.num_workers)
        if self.ordered and n_workers * world_size > 1:
            msg = "an ordered streaming dataset runs in one process: use num_workers=0"
            raise RuntimeError(msg)
        return rank * n_workers + worker_id, world_size * n_workers

    def units(self) -> list[WorkUnit]:
        """Return the units this process reads in the current epoch."""
        shard, n_shards = self._shard()
        ordered = order_units(self.plan, self.seed, self.epoch, self.shuffle)
        return ordered[shard::n_shards]

    def blocks(self) -> Iterator[EventBlock]:
        """Yield the blocks of this split in this process's units, before batching."""
        open_trees: dict[int, tuple[Any, Any]] = {}
        try:
            for unit in self.units():
                tree_file = self.files[unit.file]
                if unit.file not in open_trees:
                    if len(open_trees) >= MAX_OPEN_FILES:
                        oldest = next(iter(open_trees))
                        open_trees.pop(oldest)[0].close()
                    open_trees[unit.file] = open_tree(tree_file.path, tree_file.tree)
                tree = open_trees[unit.file][1]
                chunks = read_range(
                    self.builder,
                    tree_file,
                    tree,
                    self.chunk_size,
                    unit.entry_start,
                    unit.entry_stop,
                )
                for block, _ in chunks:
                    part = block.take(np.flatnonzero(block.split == self.split_code))
                    if not self.keep_observers:
                        part.observers = {}
                    yield part
        finally:
            for root_file, _ in open_trees.values():
                root_file.close()

    def __iter__(self) -> Iterator[Batch]:
        shard, _ = self._shard()
        rng = np.random.default_rng([self.seed, self.epoch, shard]) if self.shuffle else None
        buffer = ShuffleBuffer(self.batch_size, self.shuffle_buffer, rng)
        row = 0
        for block in self.blocks():
            for batch in buffer.add(block):
                yield self._assemble(batch, row)
                row += len(batch)
        for batch in buffer.flush():
            yield self._assemble(batch, row)
            row += len(batch)

    def _assemble(self, block: EventBlock, row: int) -> Batch:
        index = np.arange(row, row + len(block)) if self.ordered else block.entry
        return self.assembler(block, index)


class EpochDataLoader(DataLoader[Batch]):
    """DataLoader that sets its streaming dataset's epoch on every pass, so shuffling differs
    between epochs although each pass starts fresh worker processes (which copy the dataset
    when the pass starts)."""

    def __iter__(self) -> Any:
        dataset = self.dataset
        assert isinstance(dataset, StreamingDataset)
        passes = getattr(self, "_passes", 0)
        dataset.epoch = passes
        self._passes = passes + 1
        return super().__iter__()
