"""nox sessions of the template: demo, tests, matrix, update, lint.

PyTorch is installed first from ``TORCH_SPEC`` (default ``torch==2.13.0``), optionally from
``TORCH_INDEX_URL``; a plain ``torch`` requirement on Linux would pull a CUDA build of several GB.
For a CPU build from the PyTorch index: ``TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu``.
"""

from __future__ import annotations

import os
import shutil
import tomllib
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
RENDER = str(ROOT / "tests" / "rendering.py")

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "venv"

# The template's own test tools; pyproject.toml's dev group lists the same set for manual use.
TEMPLATE_TOOLS = [
    "check-jsonschema>=0.29",
    "codespell>=2.2",
    "copier>=9.4",
    "copier-template-extensions>=0.3",
    # hatchling and editables build the editable installs of rendered repos in `matrix`.
    "editables>=0.5",
    "hatchling>=1.27",
    "mdformat>=0.7",
    "mdformat-gfm>=0.3",
    "mypy>=1.11",
    "pre-commit>=3",
    "pytest>=9",
    "pytest-xdist>=3",
    "ruff>=0.17",
    "sp-repo-review[cli]>=2024.8",
    "validate-pyproject[all]>=0.16",
    "zizmor>=1",
]
TRACKERS = ("csv", "tensorboard", "mlflow", "wandb")


def install_torch(session: nox.Session) -> None:
    """Install PyTorch before anything that depends on it can pull a CUDA build."""
    spec = os.environ.get("TORCH_SPEC", "torch==2.13.0")
    index_url = os.environ.get("TORCH_INDEX_URL")
    arguments = [spec, "--extra-index-url", index_url] if index_url else [spec]
    session.install(*arguments)


def rendered_requirements(session: nox.Session) -> list[str]:
    """Return the union of the dependencies of rendered repos, one render per tracker."""
    requirements: set[str] = set()
    scratch = Path(session.create_tmp()) / "requirements"
    for tracker in TRACKERS:
        destination = scratch / tracker
        shutil.rmtree(destination, ignore_errors=True)
        session.run("python", RENDER, str(destination), f"tracker={tracker}", silent=True)
        project = tomllib.loads((destination / "pyproject.toml").read_text())["project"]
        requirements.update(project["dependencies"])
        requirements.update(project.get("optional-dependencies", {}).get("dev", []))
    return sorted(requirements)


def install_template_environment(session: nox.Session) -> None:
    """Install the template's tools, PyTorch and everything a rendered repo needs at run time."""
    install_torch(session)
    session.install(*TEMPLATE_TOOLS)
    session.install(*rendered_requirements(session))


@nox.session
def tests(session: nox.Session) -> None:
    """Run the template's test suite: questionnaire, hygiene, combinations, physics, update."""
    install_template_environment(session)
    workers = os.environ.get("PYTEST_WORKERS", "2")
    session.run("pytest", "-n", workers, "--dist", "loadgroup", *session.posargs)


@nox.session
def physics(session: nox.Session) -> None:
    """Train rendered repos to the known optimum of the toy data (their `slow` tests)."""
    install_template_environment(session)
    session.run("pytest", "-n", "2", "-m", "slow", *session.posargs)


@nox.session
def matrix(session: nox.Session) -> None:
    """Render, install, train, evaluate and test every valid combination.

    Pass ``-- --shard I/N`` to run the I-th of N shards (1-based), as the CI matrix does.
    """
    install_template_environment(session)
    session.run(
        "python",
        str(ROOT / "tests" / "matrix.py"),
        "--workdir",
        str(ROOT / ".matrix"),
        *session.posargs,
    )


@nox.session
def update(session: nox.Session) -> None:
    """Render the previous release, edit it as a user would, and `copier update` to this tree."""
    install_template_environment(session)
    session.run("pytest", "-n", "0", "tests/test_update.py", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """Render the default project, install it, make toy data, train briefly and evaluate."""
    destination = Path(session.posargs[0]).resolve() if session.posargs else ROOT / "demo"
    if destination.exists():
        session.error(f"{destination} exists: remove it or pass another folder after `--`")
    install_torch(session)
    session.install("copier>=9.4", "copier-template-extensions>=0.3")
    session.run("python", RENDER, str(destination))
    session.install("-e", f"{destination}[dev]")
    session.chdir(destination)
    env = {"WANDB_MODE": os.environ.get("WANDB_MODE", "offline")}
    session.run("make-toy-data", env=env)
    session.run("train", "trainer.max_epochs=5", env=env)
    session.run("evaluate", env=env)
    session.log(f"Rendered project: {destination}")
    runs = sorted(
        (destination / "logs" / "train" / "runs").iterdir(), key=lambda run: run.stat().st_mtime
    )
    evaluation = runs[-1] / "evaluation"
    session.log(f"Checkpoints: {runs[-1] / 'checkpoints'}")
    session.log(f"Metrics: {evaluation / 'metrics.json'}")
    session.log(f"Plots: {evaluation / 'plots'}")
    session.log(f"Predictions: {evaluation / 'predictions.root'}")


@nox.session
def lint(session: nox.Session) -> None:
    """Run ruff on the template's own code and on a render of every model family."""
    session.install("ruff>=0.6", "copier>=9.4", "copier-template-extensions>=0.3")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    scratch = Path(session.create_tmp()) / "lint"
    shutil.rmtree(scratch, ignore_errors=True)
    for task in ("classification", "regression"):
        for family in ("mlp", "deepsets", "transformer"):
            destination = scratch / f"{task}-{family}"
            session.run(
                "python", RENDER, str(destination), f"task={task}", f"model_family={family}"
            )
        destination = scratch / f"{task}-particlenet"
        session.run("python", RENDER, str(destination), f"task={task}", "use_gnn=true")
    session.run("ruff", "check", str(scratch))
    session.run("ruff", "format", "--check", str(scratch))
