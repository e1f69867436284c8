"""Map-style dataset over an in-memory :class:`EventBlock`, yielding whole batches."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .blocks import EventBlock
from .preprocessing import Preprocessor

Batch = dict[str, torch.Tensor]


class BatchAssembler:
    """Turns rows of an event block into a batch of tensors following the batch contract.

    Preprocessing is applied here, per batch, so that a preprocessor restored from a checkpoint
    after the data were read takes effect without reading them again.
    """

    def __init__(
        self,
        preprocessor: Preprocessor,
        pad_value: float,
        class_balance: np.ndarray | None,
    ) -> None:
        self.preprocessor = preprocessor
        self.pad_value = pad_value
        self.class_balance = class_balance

    def __call__(self, block: EventBlock, index: np.ndarray) -> Batch:
        batch: Batch = {}
        if block.features.shape[1] > 0:
            features = self.preprocessor.transform_features(block.features)
            batch["features"] = torch.from_numpy(features)
        if block.objects is not None and block.mask is not None:
            objects = self.preprocessor.transform_objects(block.objects, block.mask, self.pad_value)
            batch["objects"] = torch.from_numpy(objects)
            batch["mask"] = torch.from_numpy(np.ascontiguousarray(block.mask))
        if block.target.ndim == 1:
            batch["target"] = torch.from_numpy(block.target.astype(np.int64, copy=False))
            balance = self.class_balance[block.target] if self.class_balance is not None else None
        else:
            batch["target"] = torch.from_numpy(self.preprocessor.transform_target(block.target))
            balance = None
        batch["weight"] = torch.from_numpy(block.weight.astype(np.float32, copy=False))
        if balance is None:
            balance = np.ones(len(block), dtype=np.float32)
        batch["balance_weight"] = torch.from_numpy(balance.astype(np.float32, copy=False))
        batch["index"] = torch.from_numpy(index.astype(np.int64, copy=False))
        return batch


def class_balance(target: np.ndarray, weight: np.ndarray, n_classes: int) -> np.ndarray:
    """Return per-class factors that give every class the same total weight.

    The factors average to one over the events (weighted), so the loss scale does not change.
    Raises ValueError naming the class whose weights sum to zero or less.
    """
    sums = np.bincount(target, weights=weight.astype(np.float64), minlength=n_classes)
    bad = np.flatnonzero(sums <= 0)
    if len(bad):
        msg = f"class {int(bad[0])} has a total weight of {sums[bad[0]]:.4g} in the training split"
        raise ValueError(msg)
    return (sums.sum() / (n_classes * sums)).astype(np.float32)


class InMemoryDataset(Dataset[Batch]):
    """Dataset of one split held in memory; ``__getitems__`` builds a batch in one step.

    Use it with :func:`keep_batch` as ``collate_fn``: the DataLoader then passes the indices
    of a batch to ``__getitems__`` and hands its result on unchanged.
    """

    def __init__(self, block: EventBlock, assembler: BatchAssembler) -> None:
        self.block = block
        self.assembler = assembler

    def __len__(self) -> int:
        return len(self.block)

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        index = np.asarray(indices, dtype=np.int64)
        return self.assembler(self.block.take(index), index)

    def __getitem__(self, index: int) -> Batch:
        batch = self.__getitems__([index])
        return {name: value[0] for name, value in batch.items()}


def keep_batch(batch: Batch) -> Batch:
    """Collate function for datasets that build whole batches."""
    return batch
