"""Streaming dataset: reads chunks of entries with uproot while training, in flat memory.

On one rank, chunks (see :mod:`.chunking`) are dealt round-robin to the DataLoader workers,
and every chunk is read by exactly one worker. Under DDP every rank must run the same number of
batches, so the selected samples of the epoch, in chunk order, are cut into one range of
``ceil(N / world size)`` samples per rank (and of about equal parts of it per worker). The
ranges that run past the end of the epoch's ``N`` samples continue from its start again, so
fewer than ``world size`` samples are seen twice, as with torch's ``DistributedSampler``, and
every other one exactly once. Cutting by samples needs the number of selected samples of each
piece of the files: each rank counts them once, in one extra pass over the files before its
first epoch. A background thread reads and preprocesses the next chunk while batches of the
current one are consumed, and a shuffle buffer mixes samples across chunks.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from .blocks import BlockBuilder, ChunkReport
from .chunking import Piece, plan_chunks
from .datasets import ArrayBatch, BatchAssembler, PackedBatches
from .event_block import EventBlock
from .reading import decompression_pool, iterate_arrays, log_dropped
from .shuffling import ShuffleBuffer
from .sources import TreeFile, open_tree
from .worker_buffers import WorkerBuffers

log = logging.getLogger(__name__)

MAX_OPEN_FILES = 8
# Upper bound on the bytes of one message from a DataLoader worker (at least one batch). Each
# worker keeps a few buffers of this size in shared memory.
MESSAGE_BYTES = 8 * 2**20

T = TypeVar("T")


def distributed_shard() -> tuple[int, int]:
    """Return ``(rank, world size)`` of torch.distributed, or ``(0, 1)`` outside it."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class StreamingDataset(IterableDataset[ArrayBatch | PackedBatches]):
    """Batches of one split, read from the files as they are consumed.

    ``ordered=True`` reads the chunks in a fixed order without shuffling and must run in one
    process: ``index`` is then the row of the sample in its split, as for the in-memory dataset.
    Otherwise ``index`` is the dataset-wide entry id of the event, unique per event, because a
    worker cannot know the rows that other workers produce. ``rank`` and ``world_size`` default
    to those of torch.distributed. With more than one rank, every rank yields the same
    number of samples, and so of batches, per epoch (see the module notes). ``n_workers`` is
    the number of DataLoader workers that will read it, for their reusable buffers.
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
        n_workers: int = 0,
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
        self.worker_buffers = WorkerBuffers(n_workers) if n_workers > 0 else None
        self.epoch = 0
        self._passes = 0
        self._piece_samples: dict[Piece, int] | None = None
        # Samples dropped for NaN or inf (nan_policy: drop), per file, logged after one pass.
        self._dropped: dict[TreeFile, ChunkReport] = {}
        self._dropped_logged = False

    def _ranks(self) -> tuple[int, int]:
        rank, world_size = distributed_shard()
        rank = rank if self.rank is None else self.rank
        world_size = world_size if self.world_size is None else self.world_size
        return rank, world_size

    def _place(self) -> tuple[int, int, int, int]:
        """Return the rank, the world size, the worker id and the number of workers."""
        rank, world_size = self._ranks()
        worker = get_worker_info()
        worker_id, n_workers = (0, 1) if worker is None else (worker.id, worker.num_workers)
        if self.ordered and n_workers * world_size > 1:
            msg = (
                "an ordered streaming dataset (predict_dataloader, observers) runs in one "
                "process: use num_workers=0 and a single rank"
            )
            raise RuntimeError(msg)
        return rank, world_size, worker_id, n_workers

    def _shard(self) -> tuple[int, int]:
        rank, world_size, worker_id, n_workers = self._place()
        return rank * n_workers + worker_id, world_size * n_workers

    def chunks(self, epoch: int) -> list[tuple[list[Piece], slice | None]]:
        """Return the chunks this process reads in ``epoch``, each with the range of its
        selected samples that this process yields (None for all of them)."""
        rank, world_size, worker_id, n_workers = self._place()
        chunks = plan_chunks(self.files, self.loading, epoch, self.shuffle)
        if world_size == 1:
            return [(chunk, None) for chunk in chunks[worker_id::n_workers]]
        samples = self.piece_samples()
        counts = [sum(samples[piece] for piece in chunk) for chunk in chunks]
        share = equal_share(counts, rank, world_size, worker_id, n_workers)
        return [(chunks[index], slice(start, stop)) for index, start, stop in share]

    def piece_samples(self) -> dict[Piece, int]:
        """Return the number of samples of this split in every piece of the files, counted
        once by reading every piece (the pieces are the same in every epoch)."""
        if self._piece_samples is None:
            chunks = plan_chunks(self.files, self.loading, 0, shuffle=False)
            pieces = [piece for chunk in chunks for piece in chunk]
            blocks = self._piece_blocks(self._read_chunks([[piece] for piece in pieces]))
            self._piece_samples = {
                piece: sum(len(block) for block in parts)
                for piece, parts in zip(pieces, blocks, strict=True)
            }
        return self._piece_samples

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch, which seeds the order of chunks and the shuffle buffer.

        Persistent DataLoader workers keep their own copy of the dataset, which this call does
        not reach, so every pass also counts itself: the pass ``k`` after ``set_epoch(e)``
        runs epoch ``e + k``. With several ranks, the first call counts the samples per piece
        (see :meth:`piece_samples`), so that the workers started afterwards inherit the counts.
        """
        self.epoch = epoch
        self._passes = 0
        if not self.ordered and self._ranks()[1] > 1:
            self.piece_samples()

    def blocks(self, *, preprocess: bool = False, epoch: int | None = None) -> Iterator[EventBlock]:
        """Yield one block of this split per chunk this process reads, preprocessed or not.

        In the main process a read-ahead thread reads the next chunk with uproot while this
        one is built (``loading.read_ahead``); DataLoader workers read without one, because
        the workers themselves already keep the cores busy.
        """
        plan = self.chunks(self.epoch if epoch is None else epoch)
        self._dropped = {}
        reader = self._read_chunks([pieces for pieces, _ in plan])
        read_ahead = self.loading.read_ahead and get_worker_info() is None
        chunks = prefetched(reader) if read_ahead else reader
        for (_, rows), parts in zip(plan, self._piece_blocks(chunks, preprocess), strict=True):
            if not parts:
                continue
            block = parts[0] if len(parts) == 1 else EventBlock.concatenate(parts)
            yield block if rows is None else block.take(rows)
        if self._dropped and not self._dropped_logged:
            # Once per process: every epoch drops the same samples.
            self._dropped_logged = True
            worker = get_worker_info()
            for tree_file, report in self._dropped.items():
                log_dropped(tree_file, report.dropped, None if worker is None else worker.id)

    def _piece_blocks(
        self, chunks: Iterator[list[tuple[TreeFile, int, dict[str, Any]]]], preprocess: bool = False
    ) -> Iterator[list[EventBlock]]:
        """Yield, per chunk, the blocks of this split of its pieces."""
        assembler = self.assembler
        object_transform = assembler.preprocessor.transform_object_columns if preprocess else None
        for pieces in chunks:
            parts = []
            for tree_file, first, arrays in pieces:
                block, report = self.builder.build(tree_file, arrays, first, object_transform)
                if report.dropped and not self._dropped_logged:
                    self._dropped.setdefault(tree_file, ChunkReport()).add(report)
                if preprocess:
                    block = assembler.transform(block, objects_done=True)
                rows = np.flatnonzero(block.split == self.split_code)
                part = block if len(rows) == len(block) else block.take(rows)
                if not self.keep_observers:
                    part.observers = {}
                parts.append(part)
            yield parts

    def _read_chunks(
        self, chunks: list[list[Piece]]
    ) -> Generator[list[tuple[TreeFile, int, dict[str, Any]]]]:
        """Yield, per chunk, the branch arrays of its pieces with their file and first entry.

        In the main process ``loading.decompression_threads`` threads decompress the baskets;
        DataLoader workers decompress in their own thread, as they keep the cores busy already.
        """
        threads = self.loading.decompression_threads if get_worker_info() is None else 0
        trees = _OpenTrees(self.files)
        try:
            with decompression_pool(threads) as executor:
                for chunk in chunks:
                    pieces = []
                    for piece in chunk:
                        tree_file = self.files[piece.file]
                        reads = iterate_arrays(
                            trees.get(piece.file),
                            self.builder.branches(tree_file),
                            piece.entry_stop - piece.entry_start,
                            piece.entry_start,
                            piece.entry_stop,
                            executor,
                        )
                        pieces += [(tree_file, first, arrays) for first, arrays in reads]
                    yield pieces
        finally:
            trees.close()

    def __iter__(self) -> Iterator[ArrayBatch | PackedBatches]:
        shard, _ = self._shard()
        epoch = self.epoch + self._passes
        self._passes += 1
        rng = None
        if self.shuffle:
            rng = np.random.default_rng([self.loading.seed, epoch, shard])
        buffer = ShuffleBuffer(self.batch_size, self.shuffle_buffer, rng)
        worker = get_worker_info()
        row = 0
        for run in self._runs(buffer, epoch):
            arrays = self._assemble(run, row)
            row += len(run)
            if worker is None:
                for start in range(0, len(run), self.batch_size):
                    stop = start + self.batch_size
                    yield {name: value[start:stop] for name, value in arrays.items()}
                continue
            # A worker sends many batches per message in one shared-memory buffer: each
            # message and each tensor handed over costs far more than the bytes in it, and a
            # fresh buffer costs more than filling one used before.
            bytes_per_batch = self.batch_size * sum(v.nbytes for v in arrays.values()) / len(run)
            step = self.batch_size * max(1, int(MESSAGE_BYTES // bytes_per_batch))
            for start in range(0, len(run), step):
                part = {name: value[start : start + step] for name, value in arrays.items()}
                yield PackedBatches.pack(part, self.batch_size, self.worker_buffers, worker.id)

    def _runs(self, buffer: ShuffleBuffer, epoch: int) -> Iterator[EventBlock]:
        """Yield the samples in runs of whole batches (the last run may end with a short one),
        as they leave the shuffle buffer."""
        for block in self.blocks(preprocess=True, epoch=epoch):
            if (run := buffer.add_run(block)) is not None:
                yield run
        if (run := buffer.flush_run()) is not None:
            yield run

    def _assemble(self, block: EventBlock, row: int) -> ArrayBatch:
        index = np.arange(row, row + len(block)) if self.ordered else block.entry
        return self.assembler.batch(block, index)


def equal_share(
    counts: Sequence[int], rank: int, world_size: int, worker: int, n_workers: int
) -> list[tuple[int, int, int]]:
    """Return ``(chunk, start, stop)``: the ranges of selected samples of the chunks (which
    hold ``counts`` samples each, in reading order) that one (rank, worker) shard yields.

    Rank ``r`` takes the samples ``r * m ... (r + 1) * m - 1`` of the epoch, ``m`` being
    ``ceil(N / world_size)`` of its ``N`` samples, counted modulo ``N``: the last ranks start
    over at the first samples, so every rank yields ``m`` samples. Its workers split the range
    into consecutive parts of (almost) equal size, the same on every rank.
    """
    total = sum(counts)
    if total == 0:
        return []
    per_rank = -(-total // world_size)
    position = rank * per_rank + worker * per_rank // n_workers
    stop = rank * per_rank + (worker + 1) * per_rank // n_workers
    starts = np.cumsum([0, *counts])
    share = []
    while position < stop:
        wrapped = position % total
        # The last chunk starting at or before the sample, which is not empty.
        chunk = int(np.searchsorted(starts, wrapped, side="right")) - 1
        start = wrapped - int(starts[chunk])
        size = min(stop - position, counts[chunk] - start)
        share.append((chunk, start, start + size))
        position += size
    return share


def prefetched(items: Generator[T]) -> Iterator[T]:
    """Yield ``items`` while a background thread already produces the next one.

    uproot releases the GIL while it decompresses, so the next chunk is read while the
    current one is processed. At most one item waits, so memory stays at two chunks.
    """
    end = object()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="chunk-reader") as pool:
        pending = pool.submit(next, items, end)
        try:
            while (item := pending.result()) is not end:
                pending = pool.submit(next, items, end)
                yield item  # type: ignore[misc]
        finally:
            pending.cancel()
            pool.shutdown(wait=True)
            items.close()


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
