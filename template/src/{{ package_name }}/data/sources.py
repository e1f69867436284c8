"""Finding the files of each source, opening their trees and checking what they contain."""

from __future__ import annotations

import glob
import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uproot

from .config import SourceConfig
from .errors import DataError, close_matches

log = logging.getLogger(__name__)

TREE_CLASSES = ("TTree", "ROOT::RNTuple", "ROOT::Experimental::RNTuple")
# The environment variable that the example data configs on real files take their folder from.
DATA_DIR_VARIABLE = "HEP_DATA_DIR"


@dataclass(frozen=True)
class TreeFile:
    """One tree of one file, with its place in the dataset.

    ``entry_offset`` is the number of entries in all earlier files of the dataset, so
    ``entry_offset + entry`` identifies an entry uniquely. ``file_key`` seeds the random split
    from the source name and file name, so that moving the files does not move events between
    splits.
    """

    source_index: int
    file_index: int
    path: str
    tree: str
    num_entries: int
    entry_offset: int
    branches: frozenset[str]

    @property
    def file_key(self) -> int:
        return zlib.crc32(f"{self.source_index}:{Path(self.path).name}".encode())

    @property
    def where(self) -> str:
        return f"file {self.path}, tree {self.tree!r}"


def expand_files(source: SourceConfig) -> list[str]:
    """Return the files matching the source's paths and glob patterns, sorted per pattern."""
    paths: list[str] = []
    for pattern in source.files:
        expanded = str(Path(pattern).expanduser())
        if glob.has_magic(expanded):
            matches = sorted(glob.glob(expanded))  # noqa: PTH207 - patterns may be absolute
        else:
            matches = [expanded] if Path(expanded).exists() else []
        if not matches:
            data_dir = os.environ.get(DATA_DIR_VARIABLE)
            setting = "not set" if data_dir is None else f"set to {data_dir!r}"
            msg = (
                f"no file matches {pattern!r} (source {source.name!r}, relative paths start "
                f"at {Path.cwd()}); check the path in data.sources. For the toy datasets run "
                f"make-toy-data first; the example configs on real files read their folder "
                f"from {DATA_DIR_VARIABLE} ({setting})"
            )
            raise DataError(msg)
        paths.extend(matches)
    return paths


def open_tree(path: str, tree: str) -> tuple[Any, Any]:
    """Open ``path`` and return ``(file, tree)``; the caller closes the file."""
    try:
        root_file = uproot.open(path)
    except FileNotFoundError:
        msg = f"ROOT file {path} not found; check data.sources"
        raise DataError(msg) from None
    except Exception as error:  # uproot raises many types for damaged or foreign files
        msg = (
            f"cannot read {path} as a ROOT file ({type(error).__name__}: {error}); check that "
            "the file is a complete ROOT file and not truncated or still being written"
        )
        raise DataError(msg) from error
    try:
        classnames = root_file.classnames()
        trees = sorted({k.split(";")[0] for k, c in classnames.items() if c in TREE_CLASSES})
        if tree not in trees:
            present = ", ".join(trees) if trees else "none"
            hint = close_matches(tree, trees)
            msg = (
                f"tree {tree!r} not found in {path}; trees present: {present}"
                + (f" ({hint})" if hint else "")
                + "; set data.sources[].tree"
            )
            raise DataError(msg)
        return root_file, root_file[tree]
    except BaseException:
        root_file.close()
        raise


def branch_names(tree: Any) -> frozenset[str]:
    """Return the names of the top-level branches (TTree) or fields (RNTuple) of ``tree``."""
    if isinstance(tree, uproot.behaviors.TTree.TTree):
        return frozenset(tree.keys(recursive=False))
    return frozenset(tree.keys())


def scan_sources(sources: tuple[SourceConfig, ...]) -> list[TreeFile]:
    """Open every file of every source once and return its tree's size and branches.

    Files whose tree is empty are left out with a warning. A source whose trees are all empty
    raises DataError, because its events (and for classification its class) would be missing.
    """
    files: list[TreeFile] = []
    offset = 0
    for source_index, source in enumerate(sources):
        source_entries = 0
        for file_index, path in enumerate(expand_files(source)):
            root_file, tree = open_tree(path, source.tree)
            with root_file:
                num_entries = int(tree.num_entries)
                branches = branch_names(tree)
            if num_entries == 0:
                log.warning("skipping %s: tree %r has no entries", path, source.tree)
                continue
            files.append(
                TreeFile(source_index, file_index, path, source.tree, num_entries, offset, branches)
            )
            offset += num_entries
            source_entries += num_entries
        if source_entries == 0:
            msg = (
                f"every tree {source.tree!r} of source {source.name!r} is empty; fill the files "
                "or remove the source from data.sources"
            )
            raise DataError(msg)
    return files
