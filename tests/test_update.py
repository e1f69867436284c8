"""`copier update` from the previous release to the current working tree, on real git repos.

The previous release is the newest tag of this repository, or HEAD when there is no tag yet. The
current version is the working tree as it is on disk, uncommitted edits included, committed into a
temporary clone together with a small marker change, so that the update always has a template
change to merge.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import copier
import pytest
import yaml
from combinations import TEMPLATE_ROOT
from matrix import rendered_test_environment
from rendering import copy_working_tree

pytestmark = pytest.mark.xdist_group("update")

TEMPLATE_MARKER = "Template change merged by copier update."
USER_README_NOTE = "## Analysis notes\n\nOur selection follows the 2026 internal note.\n"
USER_EPOCHS_LINE = "max_epochs: 7  # tuned by the analysis team"
# Tag given to HEAD in the temporary clone when this repository has no release tag yet; copier
# needs a PEP 440 version to update from.
UNRELEASED_TAG = "v0.0.0"


def git(cwd: Path, *arguments: str) -> str:
    result = subprocess.run(
        ["git", *arguments], cwd=cwd, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=Test", "-c", "user.email=test@example.org", "commit", "-qm", message)


def tag_previous_release(repo: Path) -> str:
    """Return the newest tag reachable from HEAD, after tagging HEAD when there is none."""
    tags = git(repo, "tag", "--merged", "HEAD", "--sort=-creatordate")
    if tags:
        return tags.splitlines()[0]
    git(repo, "tag", UNRELEASED_TAG)
    return UNRELEASED_TAG


@pytest.fixture(scope="module")
def template_history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Build a template repo whose HEAD is the working tree; return it and the previous tag."""
    clone = tmp_path_factory.mktemp("template")
    subprocess.run(["git", "clone", "-q", str(TEMPLATE_ROOT), str(clone)], check=True)
    previous = tag_previous_release(clone)
    git(clone, "checkout", "-q", "-B", "update-test", previous)

    for path in clone.iterdir():
        if path.name != ".git":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    copy_working_tree(TEMPLATE_ROOT, clone)
    # The template changes the README's first lines; the user appends at its end (no conflict).
    readme = clone / "template" / "README.md.jinja"
    title, rest = readme.read_text().split("\n", 1)
    readme.write_text(f"{title}\n\n{TEMPLATE_MARKER}\n{rest}")
    commit_all(clone, "Current working tree")
    return clone, previous


def run_copier(function, *arguments, **options) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", copier.errors.DirtyLocalWarning)
        function(*arguments, defaults=True, unsafe=True, quiet=True, **options)


@pytest.fixture(scope="module")
def updated_project(
    template_history: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Render the previous release, edit it as a user would, then update it to the current tree."""
    template, previous = template_history
    project = tmp_path_factory.mktemp("project") / "analysis"
    answers = {"project_name": "Update check", "tracker": "tensorboard"}
    run_copier(copier.run_copy, str(template), str(project), data=answers, vcs_ref=previous)
    git(project, "init", "-q")
    commit_all(project, "Render the previous release")

    readme = project / "README.md"
    readme.write_text(readme.read_text() + "\n" + USER_README_NOTE)
    trainer = project / "configs" / "trainer" / "default.yaml"
    trainer_text = trainer.read_text()
    assert "max_epochs:" in trainer_text, "the trainer config has no max_epochs to edit"
    edited = "\n".join(
        USER_EPOCHS_LINE if line.startswith("max_epochs:") else line
        for line in trainer_text.splitlines()
    )
    trainer.write_text(edited + "\n")
    (project / "notes.md").write_text("Files the template does not know about stay.\n")
    commit_all(project, "Edit as an analysis team would")

    run_copier(copier.run_update, str(project), vcs_ref="HEAD", overwrite=True)
    return project


def all_files(root: Path) -> Iterator[Path]:
    """Yield every file under ``root``, ignored ones included, outside .git."""
    for path in root.rglob("*"):
        if path.is_file() and ".git" not in path.relative_to(root).parts:
            yield path


def test_update_leaves_no_rejects_or_markers(updated_project: Path) -> None:
    rejects = [p for p in all_files(updated_project) if p.suffix in {".rej", ".orig"}]
    marked = [
        p
        for p in all_files(updated_project)
        if any(
            line.startswith(("<<<<<<< ", ">>>>>>> "))
            for line in p.read_text(errors="ignore").splitlines()
        )
    ]

    assert rejects == []
    assert marked == []


def test_update_keeps_user_edits(updated_project: Path) -> None:
    readme = (updated_project / "README.md").read_text()
    trainer = (updated_project / "configs" / "trainer" / "default.yaml").read_text()

    assert USER_README_NOTE in readme
    assert USER_EPOCHS_LINE in trainer
    assert (updated_project / "notes.md").is_file()


def test_update_merges_template_change(updated_project: Path) -> None:
    assert TEMPLATE_MARKER in (updated_project / "README.md").read_text()


def test_update_changes_tracker_files(updated_project: Path, tmp_path: Path) -> None:
    project = tmp_path / "analysis"
    shutil.copytree(updated_project, project, symlinks=True)
    commit_all(project, "Update to the current template")

    run_copier(
        copier.run_update, str(project), vcs_ref="HEAD", overwrite=True, data={"tracker": "mlflow"}
    )

    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    pyproject = (project / "pyproject.toml").read_text()
    assert answers["tracker"] == "mlflow"
    assert not (project / "configs" / "logger" / "tensorboard.yaml").exists()
    assert (project / "configs" / "logger" / "mlflow.yaml").is_file()
    assert "mlflow" in pyproject
    assert "tensorboard" not in pyproject
    assert USER_EPOCHS_LINE in (project / "configs" / "trainer" / "default.yaml").read_text()


def test_updated_project_still_trains(updated_project: Path) -> None:
    env = rendered_test_environment(updated_project, threads=1)

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "train"],
        cwd=updated_project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
