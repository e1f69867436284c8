#!/usr/bin/env python3
# /// script
# dependencies = ["nox>=2025.10.14"]
# ///
"""Development sessions: `nox` runs lint and tests, `nox -s train` trains briefly on toy data.

Every session that imports the package installs PyTorch first from the index in
``TORCH_INDEX_URL`` (the CPU build by default), because a plain ``pip install torch`` on Linux
downloads the CUDA build, several GB. For a CUDA build, set it to the matching index, e.g.
``TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126 nox -s train``.
"""

from __future__ import annotations

import os

import nox

nox.needs_version = ">=2025.10.14"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_existing_virtualenvs = True

CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"


def install_project(session: nox.Session) -> None:
    """Install PyTorch from ``TORCH_INDEX_URL``, then the project with its dev extra."""
    torch_index = os.environ.get("TORCH_INDEX_URL", CPU_TORCH_INDEX)
    session.install("torch", "--index-url", torch_index)
    session.install("-e", ".[dev]")


@nox.session(default=True)
def lint(session: nox.Session) -> None:
    """Run the pre-commit hooks (ruff, formatting, spelling, schema checks) on every file."""
    session.install("pre-commit")
    session.run("pre-commit", "run", "--all-files", "--show-diff-on-failure", *session.posargs)


@nox.session(default=True)
def tests(session: nox.Session) -> None:
    """Run the test suite; extra arguments go to pytest, e.g. `nox -s tests -- -x -k train`."""
    install_project(session)
    session.run("pytest", *session.posargs)


@nox.session(default=False)
def typecheck(session: nox.Session) -> None:
    """Run mypy in strict mode on src/ (it needs the project's own dependencies installed)."""
    install_project(session)
    session.run("mypy", *session.posargs)


@nox.session(default=False)
def train(session: nox.Session) -> None:
    """Write the toy datasets, train for a few batches and evaluate again: a pipeline smoke test.

    Extra arguments are Hydra overrides for `train`, e.g. `nox -s train -- data.batch_size=64`.
    """
    install_project(session)
    session.run("make-toy-data")
    session.run("train", "debug=fast", *session.posargs)
    session.run("evaluate")


if __name__ == "__main__":
    nox.main()
