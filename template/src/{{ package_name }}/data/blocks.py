"""One chunk of entries to an :class:`EventBlock`: selection, inputs, labels, weights, checks.

Memory mode concatenates the blocks of all chunks, and stream mode turns each block into
batches.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np

from . import splitting
from .columns import JAGGED, describe, jagged_column, observer_column, scalar_column
from .config import DataConfig, ObjectsConfig
from .errors import DataError
from .event_block import EventBlock
from .expressions import Evaluator, VariableResolver
from .padding import jagged_parts, pad_objects
from .sources import TreeFile

log = logging.getLogger(__name__)

ObjectTransform = Callable[[list[np.ndarray]], list[np.ndarray]]


class PerObjectValues:
    """Values of one chunk with one entry per object, for per-object samples.

    The first per-object (jagged) feature fixes the objects: its number of objects per event,
    after the per-object selection ``object_keep``. Per-object values must have the same
    numbers; per-event values are repeated for every object of their event.
    """

    def __init__(
        self,
        evaluator: Evaluator,
        object_keep: ak.Array | None,
        where: str,
        feature_names: Sequence[str],
    ) -> None:
        self.evaluator = evaluator
        self.object_keep = object_keep
        self.where = where
        first = next((f for f in feature_names if describe(evaluator.evaluate(f)) == JAGGED), None)
        if first is None:
            msg = (
                f"data.samples is 'object' but no feature in {where} is a per-object list; "
                "list per-object branches such as Jet_pt under inputs.features"
            )
            raise DataError(msg)
        self.first = first
        self.counts, _ = jagged_parts(self._jagged(first))

    def _jagged(self, text: str) -> ak.Array:
        column = jagged_column(self.evaluator.evaluate(text), text, self.where)
        return column if self.object_keep is None else column[self.object_keep]

    def values(self, text: str, role: str = "feature") -> np.ndarray:
        """Return the numbers of ``text``, one per object; ``role`` as in scalar_column."""
        value = self.evaluator.evaluate(text)
        if describe(value) != JAGGED:
            per_event = scalar_column(value, self.evaluator.length, text, self.where, role)
            return np.repeat(per_event, self.counts)
        counts, flat = jagged_parts(self._jagged(text))
        if not np.array_equal(counts, self.counts):
            msg = (
                f"{text!r} in {self.where} has a different number of objects per event than "
                f"{self.first!r}; per-object values must come from one collection"
            )
            raise DataError(msg)
        return flat

    def observer(self, name: str) -> np.ndarray:
        """Return observer ``name`` per object. Per-event observers may be strings."""
        value = self.evaluator.evaluate(name)
        if describe(value) == JAGGED:
            return self.values(name)
        per_event = observer_column(value, self.evaluator.length, name, self.where)
        return np.repeat(per_event, self.counts)


@dataclass
class ChunkReport:
    """Event counts of one chunk, summed per file for logging and for the empty-selection check."""

    read: int = 0
    selected: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def add(self, other: ChunkReport) -> None:
        self.read += other.read
        self.selected += other.selected
        for name, count in other.dropped.items():
            self.dropped[name] = self.dropped.get(name, 0) + count


class BlockBuilder:
    """Turns chunks of branches into event blocks according to a :class:`DataConfig`."""

    def __init__(self, config: DataConfig) -> None:
        self.config = config

    def resolver(self, tree_file: TreeFile) -> VariableResolver:
        source = self.config.sources[tree_file.source_index]
        return VariableResolver(
            tree_file.branches, source.aliases, self.config.new_variables, tree_file.where
        )

    def expressions(self) -> list[str]:
        """Return every expression a chunk evaluates, to find the branches to read."""
        config = self.config
        names = [*config.selection, *config.feature_names, *config.object_feature_names]
        names += [*config.targets, *config.observers]
        optional = [config.label, config.weight, config.split.key]
        if config.inputs.objects is not None:
            optional += [config.inputs.objects.sort_by, config.inputs.objects.selection]
        if config.split.method != "modulo":
            optional.remove(config.split.key)
        return names + [name for name in optional if name is not None]

    def branches(self, tree_file: TreeFile) -> set[str]:
        """Return the branches of ``tree_file`` that chunks need, or raise ExpressionError for
        a name that is not a branch, alias or new variable."""
        return self.resolver(tree_file).branches_for(self.expressions())

    def build(
        self,
        tree_file: TreeFile,
        arrays: Mapping[str, Any],
        entry_start: int,
        object_transform: ObjectTransform | None = None,
    ) -> tuple[EventBlock, ChunkReport]:
        """Build the block of the entries ``entry_start ...`` held in ``arrays``.

        ``object_transform`` is applied to the flat values of the kept objects before padding.
        """
        length = len(next(iter(arrays.values()))) if arrays else 0
        entries = np.arange(entry_start, entry_start + length, dtype=np.int64)
        evaluator = Evaluator(self.resolver(tree_file), arrays, length, entries)
        report = ChunkReport(read=length)

        evaluator, object_keep = self._select(evaluator, tree_file)
        if self.config.samples == "object":
            block = self._object_block(evaluator, object_keep, tree_file)
        else:
            block = self._event_block(evaluator, tree_file, object_transform)
        block, report.dropped = self._check_finite(block, tree_file)
        report.selected = len(block)
        return block, report

    # Selection -------------------------------------------------------------------------------

    def _select(
        self, evaluator: Evaluator, tree_file: TreeFile
    ) -> tuple[Evaluator, ak.Array | None]:
        """Apply the selection expressions in order. Event-level cuts drop events, and
        per-object cuts (in per-object mode) combine into a jagged mask of the objects to keep."""
        object_keep = None
        for text in self.config.selection:
            value = evaluator.evaluate(text)
            kind = describe(value)
            if kind == "a constant":
                value = np.full(evaluator.length, bool(value))
                kind = describe(value)
            if kind == describe(np.zeros(1)):
                keep = scalar_column(value, evaluator.length, text, tree_file.where)
                self._check_boolean(keep.dtype, text, tree_file)
                evaluator = evaluator.filtered(keep)
                if object_keep is not None:
                    object_keep = object_keep[keep]
            elif self.config.samples == "object":
                keep = jagged_column(value, text, tree_file.where)
                self._check_boolean(ak.to_numpy(ak.flatten(keep)).dtype, text, tree_file)
                object_keep = keep if object_keep is None else object_keep & keep
            else:
                msg = (
                    f"selection {text!r} in {tree_file.where} gives {kind}, not one boolean per "
                    "event; reduce it with ak.any(..., axis=1) or ak.all(..., axis=1), or cut "
                    "objects with inputs.objects.selection"
                )
                raise DataError(msg)
        return evaluator, object_keep

    @staticmethod
    def _check_boolean(dtype: np.dtype, text: str, tree_file: TreeFile) -> None:
        if dtype.kind != "b":
            msg = (
                f"selection {text!r} in {tree_file.where} gives values of type {dtype}, not "
                "booleans; write a comparison such as x > 0"
            )
            raise DataError(msg)

    # Event-level samples ---------------------------------------------------------------------

    def _event_block(
        self,
        evaluator: Evaluator,
        tree_file: TreeFile,
        object_transform: ObjectTransform | None,
    ) -> EventBlock:
        config = self.config
        n = evaluator.length
        where = tree_file.where
        features = self._stack(
            [scalar_column(evaluator.evaluate(f), n, f, where) for f in config.feature_names], n
        )
        objects = mask = None
        if config.inputs.objects is not None:
            spec = config.inputs.objects
            objects, mask = self._pad(evaluator, tree_file, spec, object_transform)

        def column(text: str, role: str) -> np.ndarray:
            return scalar_column(evaluator.evaluate(text), n, text, where, role)

        return EventBlock(
            features=features,
            objects=objects,
            mask=mask,
            target=self._target(column, n, tree_file),
            weight=self._weight(column, n, tree_file),
            entry=evaluator.entries + tree_file.entry_offset,
            split=self._split(evaluator, tree_file),
            source=np.full(n, tree_file.source_index, dtype=np.int16),
            observers={
                name: observer_column(evaluator.evaluate(name), n, name, where)
                for name in config.observers
            },
        )

    @staticmethod
    def _pad(
        evaluator: Evaluator,
        tree_file: TreeFile,
        spec: ObjectsConfig,
        object_transform: ObjectTransform | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        where = tree_file.where
        columns = [jagged_column(evaluator.evaluate(b), b, where) for b in spec.branches]
        sort_key = None
        if spec.sort_by is not None:
            sort_key = jagged_column(evaluator.evaluate(spec.sort_by), spec.sort_by, where)
        if spec.selection is not None:
            keep = jagged_column(evaluator.evaluate(spec.selection), spec.selection, where)
            columns = [column[keep] for column in columns]
            sort_key = None if sort_key is None else sort_key[keep]
        try:
            return pad_objects(
                columns, spec.max_length, spec.pad_value, sort_key, transform=object_transform
            )
        except ValueError as error:
            counts = {
                b: ak.to_numpy(ak.num(c, axis=1))
                for b, c in zip(spec.branches, columns, strict=True)
            }
            first = spec.branches[0]
            other = next(
                (b for b in spec.branches if not np.array_equal(counts[b], counts[first])),
                spec.sort_by,
            )
            msg = (
                f"object branches {first!r} and {other!r} in {where} have different numbers "
                f"of objects per event ({error}); all branches of inputs.objects must belong "
                "to the same collection"
            )
            raise DataError(msg) from None

    # Per-object samples ----------------------------------------------------------------------

    def _object_block(
        self, evaluator: Evaluator, object_keep: ak.Array | None, tree_file: TreeFile
    ) -> EventBlock:
        config = self.config
        per_object = PerObjectValues(evaluator, object_keep, tree_file.where, config.feature_names)
        counts = per_object.counts
        n_objects = int(counts.sum())
        features = self._stack([per_object.values(f) for f in config.feature_names], n_objects)
        return EventBlock(
            features=features,
            objects=None,
            mask=None,
            target=self._target(per_object.values, n_objects, tree_file),
            weight=self._weight(per_object.values, n_objects, tree_file),
            entry=np.repeat(evaluator.entries + tree_file.entry_offset, counts),
            split=np.repeat(self._split(evaluator, tree_file), counts),
            source=np.full(n_objects, tree_file.source_index, dtype=np.int16),
            observers={name: per_object.observer(name) for name in config.observers},
        )

    # Shared pieces ---------------------------------------------------------------------------

    @staticmethod
    def _stack(columns: list[np.ndarray], n: int) -> np.ndarray:
        if not columns:
            return np.zeros((n, 0), dtype=np.float32)
        return np.stack(columns, axis=1).astype(np.float32, copy=False)

    def _target(
        self, column: Callable[[str, str], np.ndarray], n: int, tree_file: TreeFile
    ) -> np.ndarray:
        config = self.config
        if config.targets:
            return self._stack([column(t, "target") for t in config.targets], n)
        if config.label is None:
            source = config.sources[tree_file.source_index]
            return np.full(n, config.classes.index(source.label), dtype=np.int64)
        values = column(config.label, "label")
        if values.dtype.kind == "f" and not np.all(values == np.round(values)):
            msg = (
                f"label {config.label!r} in {tree_file.where} gives non-integer values; "
                "it must give the class index (or a boolean for two classes)"
            )
            raise DataError(msg)
        labels = values.astype(np.int64)
        bad = (labels < 0) | (labels >= len(config.classes))
        if np.any(bad):
            msg = (
                f"label {config.label!r} in {tree_file.where} gives {labels[bad][0]}, outside "
                f"the class indices 0..{len(config.classes) - 1} of data.classes "
                f"{list(config.classes)}"
            )
            raise DataError(msg)
        return labels

    def _weight(
        self, column: Callable[[str, str], np.ndarray], n: int, tree_file: TreeFile
    ) -> np.ndarray:
        scale = self.config.sources[tree_file.source_index].weight_scale
        if self.config.weight is None:
            return np.full(n, scale, dtype=np.float32)
        return (column(self.config.weight, "weight") * scale).astype(np.float32)

    def _split(self, evaluator: Evaluator, tree_file: TreeFile) -> np.ndarray:
        split = self.config.split
        if split.method == "random" or split.key is None:
            return splitting.assign_random(split, tree_file.file_key, evaluator.entries)
        value = evaluator.evaluate(split.key)
        keys = scalar_column(value, evaluator.length, split.key, tree_file.where)
        return splitting.assign_modulo(split, keys, tree_file.where)

    def _check_finite(
        self, block: EventBlock, tree_file: TreeFile
    ) -> tuple[EventBlock, dict[str, int]]:
        """Raise on NaN or inf in inputs, targets or weights (nan_policy: fail), or drop the
        affected samples and return how many each variable cost (nan_policy: drop)."""
        checked = [block.features, block.weight]
        checked += [block.objects] if block.objects is not None else []
        checked += [block.target] if self.config.targets else []
        if all(np.isfinite(values).all() for values in checked):
            return block, {}
        bad = np.zeros(len(block), dtype=bool)
        dropped: dict[str, int] = {}
        for name, rows in self._nonfinite_rows(block):
            count = int(np.count_nonzero(rows & ~bad))
            if count == 0:
                continue
            if self.config.nan_policy == "fail":
                first = int(block.entry[rows][0] - tree_file.entry_offset)
                msg = (
                    f"{int(np.count_nonzero(rows))} samples in {tree_file.where} have NaN or inf "
                    f"in {name!r} (first at entry {first}); fix the input, or set "
                    "data.nan_policy: drop to drop such samples and count them"
                )
                raise DataError(msg)
            dropped[name] = count
            bad |= rows
        if not dropped:
            return block, dropped
        return block.take(~bad), dropped

    def _nonfinite_rows(self, block: EventBlock) -> Iterator[tuple[str, np.ndarray]]:
        config = self.config
        for index, name in enumerate(config.feature_names):
            yield name, ~np.isfinite(block.features[:, index])
        if block.objects is not None:
            for index, name in enumerate(config.object_feature_names):
                yield name, (~np.isfinite(block.objects[:, :, index])).any(axis=1)
        if config.targets:
            for index, name in enumerate(config.targets):
                yield name, ~np.isfinite(block.target[:, index])
        yield config.weight or "weight", ~np.isfinite(block.weight)
