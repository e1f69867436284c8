"""Streaming dataset: reads chunks of entries with uproot while training, in flat memory.

Each epoch cuts every file into pieces and combines them into chunks of about ``chunk_size``
entries that hold the same fraction of every file (of ``files_per_chunk`` files at a time when
there are more, see :func:`plan_chunks`). Chunks are dealt
round-robin to the (rank, worker) shards and every chunk is read by exactly one shard, so every
selected sample appears exactly once per epoch whatever the number of files, the chunk size,
the workers or the ranks. A shuffle buffer then mixes samples across chunks.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from .blocks import BlockBuilder, EventBlock
from .config import LoadingConfig
from .datasets import Batch, BatchAssembler
from .reading import read_range
from .sources import TreeFile, open_tree

log = logging.getLogger(__name__)

MAX_OPEN_FILES = 8


@dataclass(frozen=True)
class Piece:
    """Entries ``[entry_start, entry_stop)`` of file number ``file`` of the dataset."""

    file: int
    entry_start: int
    entry_stop: int


def plan_pieces(files: Sequence[TreeFile], piece_size: int) -> list[list[Piece]]:
    """Cut every file into pieces of ``piece_size`` entries (the last may be shorter)."""
    plan = []
    for index, tree_file in enumerate(files):
        edges = [*range(0, tree_file.num_entries, piece_size), tree_file.num_entries]
        plan.append([Piece(index, a, b) for a, b in itertools.pairwise(edges)])
    return plan


def order_pieces(plan: list[list[Piece]], seed: int, epoch: int, shuffle: bool) -> list[Piece]:
    """Return all pieces in reading order, in which all files advance at the same pace.

    Piece ``k`` of a file with ``n`` pieces gets the position ``(k + u) / n``, with ``u``
    uniform in [0, 1) (0.5 without shuffling); sorting by position interleaves the files in
    proportion to their sizes. With shuffling, each file's pieces are also permuted per epoch.
    """
    rng = np.random.default_rng([seed, epoch])
    keyed = []
    for pieces in plan:
        order = rng.permutation(len(pieces)) if shuffle else np.arange(len(pieces))
        offsets = rng.random(len(pieces)) if shuffle else np.full(len(pieces), 0.5)
        for k, (piece_index, offset) in enumerate(zip(order, offsets, strict=True)):
            piece = pieces[piece_index]
            keyed.append(((k + offset) / len(pieces), piece.file, piece))
    keyed.sort(key=lambda item: (item[0], item[1]))
    return [piece for _, _, piece in keyed]


def plan_chunks(
    files: Sequence[TreeFile], loading: LoadingConfig, epoch: int, shuffle: bool
) -> list[list[Piece]]:
    """Return the chunks of one epoch, each a list of pieces of about ``chunk_size`` entries.

    With at most ``files_per_chunk`` files, every file is cut into as many pieces as there are
    chunks and each chunk takes one piece of every file: the same fraction of each file.
    With more files, each file is cut into pieces of ``chunk_size / files_per_chunk`` entries
    and a chunk takes ``files_per_chunk`` consecutive pieces of the reading order of
    :func:`order_pieces`, so of different files.
    """
    total = sum(f.num_entries for f in files)
    if len(files) <= loading.files_per_chunk:
        rng = np.random.default_rng([loading.seed, epoch])
        n_chunks = max(1, math.ceil(total / loading.chunk_size))
        per_file = []
        for index, tree_file in enumerate(files):
            edges = np.linspace(0, tree_file.num_entries, n_chunks + 1).round().astype(int)
            pieces = [Piece(index, int(a), int(b)) for a, b in itertools.pairwise(edges)]
            if shuffle:
                pieces = [pieces[k] for k in rng.permutation(n_chunks)]
            per_file.append(pieces)
        chunks = [[pieces[k] for pieces in per_file] for k in range(n_chunks)]
    else:
        per_chunk = loading.files_per_chunk
        piece_size = max(1, loading.chunk_size // per_chunk)
        pieces = order_pieces(plan_pieces(files, piece_size), loading.seed, epoch, shuffle)
        chunks = [pieces[start : start + per_chunk] for start in range(0, len(pieces), per_chunk)]
    chunks = [[p for p in chunk if p.entry_stop > p.entry_start] for chunk in chunks]
    return [chunk for chunk in chunks if chunk]


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

    ``ordered=True`` reads the chunks in a fixed order without shuffling and must run in one
    process: ``index`` is then the row of the sample in its split, as for the in-memory dataset.
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
        self.loading = loading
        self.shuffle_buffer = loading.shuffle_buffer if self.shuffle else 0
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    def _shard(self) -> tuple[int, int]:
        rank, world_size = distributed_shard()
        rank = rank if self.rank is None else self.rank
        world_size = world_size if self.world_size is None else self.world_size
        worker = get_worker_info()
        worker_id, n_workers = (0, 1) if worker is None else (worker.id, worker.num_workers)
        if self.ordered and n_workers * world_size > 1:
            msg = (
                "an ordered streaming dataset (predict_dataloader, observers) runs in one "
                "process: use num_workers=0 and a single rank"
            )
            raise RuntimeError(msg)
        return rank * n_workers + worker_id, world_size * n_workers

    def chunks(self) -> list[list[Piece]]:
        """Return the chunks this process reads in the current epoch."""
        shard, n_shards = self._shard()
        chunks = plan_chunks(self.files, self.loading, self.epoch, self.shuffle)
        return chunks[shard::n_shards]

    def blocks(self) -> Iterator[EventBlock]:
        """Yield one block of this split per chunk this process reads, before batching."""
        trees = _OpenTrees(self.files)
        try:
            for chunk in self.chunks():
                parts = []
                for piece in chunk:
                    tree_file = self.files[piece.file]
                    reads = read_range(
                        self.builder,
                        tree_file,
                        trees.get(piece.file),
                        piece.entry_stop - piece.entry_start,
                        piece.entry_start,
                        piece.entry_stop,
                    )
                    for block, _ in reads:
                        part = block.take(np.flatnonzero(block.split == self.split_code))
                        if not self.keep_observers:
                            part.observers = {}
                        parts.append(part)
                if parts:
                    yield EventBlock.concatenate(parts)
        finally:
            trees.close()

    def __iter__(self) -> Iterator[Batch]:
        shard, _ = self._shard()
        rng = None
        if self.shuffle:
            rng = np.random.default_rng([self.loading.seed, self.epoch, shard])
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


class _OpenTrees:
    """Keeps up to MAX_OPEN_FILES files open, closing the least recently opened first."""

    def __init__(self, files: Sequence[TreeFile]) -> None:
        self.files = files
        self.open: dict[int, tuple[Any, Any]] = {}

    def get(self, index: int) -> Any:
        if index not in self.open:
            if len(self.open) >= MAX_OPEN_FILES:
                self.open.pop(next(iter(self.open)))[0].close()
            tree_file = self.files[index]
            self.open[index] = open_tree(tree_file.path, tree_file.tree)
        return self.open[index][1]

    def close(self) -> None:
        for root_file, _ in self.open.values():
            root_file.close()
        self.open.clear()


class EpochDataLoader(DataLoader[Batch]):
    """DataLoader that sets its streaming dataset's epoch on every pass, so shuffling differs
    between epochs although each pass starts fresh worker processes (which copy the dataset
    when the pass starts)."""

    def __iter__(self) -> Any:
        dataset = self.dataset
        if not isinstance(dataset, StreamingDataset):
            msg = f"EpochDataLoader needs a StreamingDataset, got {type(dataset).__name__}"
            raise TypeError(msg)
        passes = getattr(self, "_passes", 0)
        dataset.epoch = passes
        self._passes = passes + 1
        return super().__iter__()
