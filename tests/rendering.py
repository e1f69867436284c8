"""Render the template with copier's Python API, the way `copier copy` does."""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import copier

sys.path.insert(0, str(Path(__file__).resolve().parent))

from combinations import TEMPLATE_ROOT


def render(destination: Path, answers: dict[str, object], template: Path = TEMPLATE_ROOT) -> Path:
    """Render ``template`` into ``destination`` with ``answers`` and defaults for the rest.

    A git repository is rendered at HEAD, not at its newest tag, and with its uncommitted edits.
    """
    vcs_ref = "HEAD" if (template / ".git").exists() else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", copier.errors.DirtyLocalWarning)
        copier.run_copy(
            str(template),
            str(destination),
            data=answers,
            defaults=True,
            unsafe=True,
            quiet=True,
            vcs_ref=vcs_ref,
        )
    return destination


def copy_working_tree(source: Path, destination: Path) -> Path:
    """Copy the tracked and untracked-but-not-ignored files of the git repo ``source``."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=source,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for relative in filter(None, listing.split("\0")):
        source_file = source / relative
        if not source_file.is_file():
            continue  # deleted in the working tree but still in the index
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source_file, target)
    return destination


def snapshot_template(destination: Path) -> Path:
    """Copy the working tree of the template to ``destination``, without its git history.

    copier runs one git command per rendered file of a git repository, so it renders a plain folder
    faster (1.0 s against 1.8 s here). Tests that render many combinations use a snapshot.
    """
    return copy_working_tree(TEMPLATE_ROOT, destination)


def main() -> None:
    """Render from the command line: ``python tests/rendering.py DEST [KEY=VALUE ...]``.

    Values are strings, except ``true`` and ``false`` (so ``python_version=3.10`` stays "3.10").
    """
    destination, *pairs = sys.argv[1:]
    booleans = {"true": True, "false": False}
    answers: dict[str, object] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        answers[key] = booleans.get(value.lower(), value)
    render(Path(destination), answers)


if __name__ == "__main__":
    main()
