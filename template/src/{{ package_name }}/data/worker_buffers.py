"""Shared-memory buffers that streaming DataLoader workers fill again and again.

A worker sends its batches to the main process in a byte buffer in shared memory (see
``PackedBatches`` in :mod:`.datasets`). A fresh buffer for every message costs about as much
as the rest of the worker's work on its samples. Allocating 32 MiB of shared memory and
faulting in its pages took about 22 ms, against 1.4 ms to fill a buffer used before (torch
2.13, two-core Linux virtual machine). So every worker keeps a few buffers, and the main
process hands a buffer back once the last batch tensor that views it has been freed.

Whether a buffer is in use is kept in an array of flags in shared memory, created in the main
process before the workers start. Both sides change or read a flag under the array's lock,
which also orders the main process's last reads of a buffer before the worker's next writes.
"""

from __future__ import annotations

import multiprocessing
import weakref
from typing import Any

import torch

# Buffers per worker: up to two messages wait in the DataLoader's queue, the main process
# reads a third and the worker fills a fourth.
BUFFERS_PER_WORKER = 4


class WorkerBuffers:
    """Reusable shared-memory buffers of the ``n_workers`` workers of one DataLoader.

    Create it in the main process before the workers start. A worker calls :meth:`acquire`
    for a buffer to fill. The main process wraps each buffer that arrives with :meth:`adopt`,
    which releases it when the last tensor viewing it is freed. A worker whose buffers are
    all in use (for example while the training loop keeps batches), or whose id is not below
    ``n_workers``, gets a fresh buffer that is not reused (slot -1).
    """

    def __init__(self, n_workers: int, per_worker: int = BUFFERS_PER_WORKER) -> None:
        self.per_worker = per_worker
        self.n_workers = n_workers
        self._in_use: Any = multiprocessing.Array("b", max(1, n_workers * per_worker))
        # Filled in each worker process: its buffers, by position among its slots.
        self._buffers: list[torch.Tensor | None] = [None] * per_worker

    def __getstate__(self) -> dict[str, Any]:
        # The buffers belong to one worker; another process starts without them.
        return {**self.__dict__, "_buffers": [None] * self.per_worker}

    def acquire(self, worker_id: int, n_bytes: int) -> tuple[int, torch.Tensor]:
        """Return ``(slot, buffer)``: a shared-memory byte tensor of at least ``n_bytes`` that
        the main process no longer reads, now marked as in use."""
        if worker_id < self.n_workers:
            first = worker_id * self.per_worker
            with self._in_use.get_lock():
                for position in range(self.per_worker):
                    if self._in_use[first + position]:
                        continue
                    buffer = self._buffers[position]
                    if buffer is None or buffer.numel() < n_bytes:
                        buffer = shared_bytes(n_bytes)
                        self._buffers[position] = buffer
                    self._in_use[first + position] = 1
                    return first + position, buffer
        return -1, shared_bytes(n_bytes)

    def adopt(self, buffer: torch.Tensor, slot: int) -> torch.Tensor:
        """Return a tensor on the memory of ``buffer`` (received from a worker) whose storage,
        once freed with every view of it, hands ``slot`` back to its worker."""
        if slot < 0:
            return buffer
        array = buffer.numpy().view()
        weakref.finalize(array, self.release, slot)
        # The tensor's storage keeps a reference to the array until the storage is freed.
        return torch.frombuffer(array, dtype=torch.uint8)

    def release(self, slot: int) -> None:
        """Hand the buffer of ``slot`` back to its worker."""
        with self._in_use.get_lock():
            self._in_use[slot] = 0


def shared_bytes(n_bytes: int) -> torch.Tensor:
    """Return an uninitialised byte tensor of ``n_bytes`` in shared memory."""
    buffer = torch.empty(n_bytes, dtype=torch.uint8)
    buffer.untyped_storage().share_memory_()
    return buffer
