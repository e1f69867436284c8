"""Render the template with copier's Python API, the way `copier copy` does."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import copier
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from combinations import TEMPLATE_ROOT


def render(destination: Path, answers: dict[str, object], template: Path = TEMPLATE_ROOT) -> Path:
    """Render ``template`` into ``destination`` with ``answers`` and defaults for the rest.

    A template with uncommitted edits is rendered as it is on disk, edits included.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", copier.errors.DirtyLocalWarning)
        copier.run_copy(
            str(template),
            str(destination),
            data=answers,
            defaults=True,
            unsafe=True,
            quiet=True,
        )
    return destination


def main() -> None:
    """Render from the command line: ``python tests/rendering.py DEST [KEY=VALUE ...]``."""
    destination, *pairs = sys.argv[1:]
    answers: dict[str, object] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        answers[key] = yaml.safe_load(value)
    render(Path(destination), answers)


if __name__ == "__main__":
    main()
