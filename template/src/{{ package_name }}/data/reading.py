"""Reading chunks of entries from the trees of a dataset, with progress logging."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import awkward as ak

from .blocks import BlockBuilder, ChunkReport
from .errors import DataError
from .event_block import EventBlock
from .sources import TreeFile, open_tree

log = logging.getLogger(__name__)


class ReadProgress:
    """Logs reading progress at most every ``interval`` seconds, and a summary at the end."""

    def __init__(self, total_entries: int, interval: float = 10.0) -> None:
        self.total = total_entries
        self.interval = interval
        self.done = 0
        self.start = time.monotonic()
        self.last = self.start

    def update(self, entries: int) -> None:
        self.done += entries
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            log.info(
                "read %d of %d entries (%.0f%%, %.0f entries/s)",
                self.done,
                self.total,
                100.0 * self.done / max(self.total, 1),
                rate,
            )

    def finish(self, kept: int) -> None:
        elapsed = time.monotonic() - self.start
        log.info("read %d entries in %.2f s, kept %d samples", self.done, elapsed, kept)


@contextmanager
def decompression_pool(threads: int) -> Iterator[Executor | None]:
    """Yield a pool of ``threads`` threads that decompress the baskets uproot reads, or None
    (decompress in the reading thread) for ``threads`` = 0.

    zlib, LZ4 and ZSTD release the GIL while they decompress, so the baskets of one read are
    decompressed in parallel while the calling thread goes on with Python work.
    """
    if threads == 0:
        yield None
        return
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="decompress") as pool:
        yield pool


def iterate_arrays(
    tree: Any,
    branches: set[str],
    chunk_size: int,
    entry_start: int,
    entry_stop: int,
    executor: Executor | None = None,
) -> Iterator[tuple[int, dict[str, ak.Array]]]:
    """Yield ``(first entry, {branch: array})`` for chunks of at most ``chunk_size`` entries,
    decompressing the baskets in ``executor`` when one is given."""
    wanted = set(branches)
    if not wanted:
        # uproot yields no chunks when no branch is selected, but every chunk needs a length.
        wanted = {min(tree.keys())}
    chunks = tree.iterate(
        filter_name=lambda name: name in wanted,
        step_size=chunk_size,
        entry_start=entry_start,
        entry_stop=entry_stop,
        library="ak",
        report=True,
        decompression_executor=executor,
    )
    while True:
        try:
            arrays, report = next(chunks)
        except StopIteration:
            return
        except Exception as error:  # uproot raises many types for damaged files
            msg = (
                f"failed to read entries {entry_start}..{entry_stop} of {sorted(wanted)} from "
                f"{tree.file.file_path}, tree {tree.name!r} ({type(error).__name__}: {error}); "
                "the file may be truncated or damaged"
            )
            raise DataError(msg) from error
        yield report.tree_entry_start, {name: arrays[name] for name in arrays.fields}


def read_range(
    builder: BlockBuilder,
    tree_file: TreeFile,
    tree: Any,
    chunk_size: int,
    entry_start: int,
    entry_stop: int,
    executor: Executor | None = None,
) -> Iterator[tuple[EventBlock, ChunkReport]]:
    """Yield the event block of each chunk of the open ``tree`` between the given entries."""
    branches = builder.branches(tree_file)
    reads = iterate_arrays(tree, branches, chunk_size, entry_start, entry_stop, executor)
    for first, arrays in reads:
        yield builder.build(tree_file, arrays, first)


def read_file(
    builder: BlockBuilder,
    tree_file: TreeFile,
    chunk_size: int,
    progress: ReadProgress | None = None,
    executor: Executor | None = None,
) -> Iterator[tuple[EventBlock, ChunkReport]]:
    """Yield the event block of each chunk of ``tree_file``."""
    root_file, tree = open_tree(tree_file.path, tree_file.tree)
    with root_file:
        chunks = read_range(
            builder, tree_file, tree, chunk_size, 0, tree_file.num_entries, executor
        )
        for block, report in chunks:
            if progress is not None:
                progress.update(report.read)
            yield block, report


def read_all(
    builder: BlockBuilder, files: list[TreeFile], chunk_size: int, decompression_threads: int = 0
) -> tuple[EventBlock, dict[str, ChunkReport]]:
    """Read every file into one block; raises when the selection keeps nothing at all.

    ``decompression_threads`` threads decompress the baskets (see :func:`decompression_pool`).
    """
    for tree_file in files:
        builder.branches(tree_file)  # check every file's names before reading anything
    progress = ReadProgress(sum(f.num_entries for f in files))
    blocks: list[EventBlock] = []
    reports: dict[str, ChunkReport] = {}
    with decompression_pool(decompression_threads) as executor:
        for tree_file in files:
            report = reports.setdefault(tree_file.path, ChunkReport())
            chunks = read_file(builder, tree_file, chunk_size, progress, executor)
            for block, chunk_report in chunks:
                blocks.append(block)
                report.add(chunk_report)
            log_report(tree_file, report)
    total = sum(r.selected for r in reports.values())
    progress.finish(total)
    if total == 0:
        raise empty_selection_error(builder, reports)
    return EventBlock.concatenate(blocks), reports


def log_dropped(tree_file: TreeFile, dropped: dict[str, int], worker: int | None = None) -> None:
    """Warn about the samples of ``tree_file`` dropped for NaN or inf, counted per input.

    In DataLoader worker ``worker`` the counts cover the chunks that this worker read."""
    counts = ", ".join(f"{name}: {count}" for name, count in dropped.items())
    scope = "" if worker is None else f" in the chunks read by DataLoader worker {worker}"
    log.warning(
        "dropped samples with NaN or inf in %s%s (%s; nan_policy: drop)",
        tree_file.where,
        scope,
        counts,
    )


def log_report(tree_file: TreeFile, report: ChunkReport) -> None:
    if report.dropped:
        log_dropped(tree_file, report.dropped)
    if report.selected == 0:
        log.warning("no sample of %s passes the selection", tree_file.where)


def empty_selection_error(builder: BlockBuilder, reports: dict[str, ChunkReport]) -> DataError:
    """Return the error for a dataset in which no sample survives selection and checks."""
    counts = "; ".join(
        f"{path}: {report.selected} of {report.read} kept" for path, report in reports.items()
    )
    selection = list(builder.config.selection)
    return DataError(
        f"no sample is left after the selection {selection} and the NaN checks ({counts}); "
        "loosen data.selection or check the input files"
    )
