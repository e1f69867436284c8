"""Planning which entries each streaming chunk reads.

Each epoch cuts every file into pieces and combines them into chunks of about ``chunk_size``
entries that hold the same fraction of every file (of ``files_per_chunk`` files at a time when
there are more). The pieces of an epoch cover every entry of every file exactly once, which
the streaming tests check for several file sizes, chunk sizes and shard counts.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .config import LoadingConfig
from .sources import TreeFile


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
    uniform in [0, 1) (0.5 without shuffling). Sorting by position interleaves the files in
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
