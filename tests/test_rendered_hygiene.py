"""The default render against the tools its own CI and pre-commit hooks run.

Each tool runs as a subprocess, from the executable installed next to this Python or else from
PATH. A test whose tool is missing is skipped with the name of the package that provides it.
pre-commit cannot run its hooks offline because it clones them from GitHub, so its configuration
is validated and the hooks' tools run directly.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from rendering import render as render_template

pytestmark = pytest.mark.xdist_group("hygiene")

BIN_DIR = Path(sys.executable).parent


def tool(name: str, package: str | None = None) -> str:
    """Return the path of the command ``name``, or skip the test when it is not installed."""
    executable = shutil.which(name, path=str(BIN_DIR)) or shutil.which(name)
    if executable is None:
        pytest.skip(f"{name} is not installed; `pip install {package or name}` provides it")
    return executable


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, check=False, timeout=300
    )


def output_of(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit status {result.returncode}\n{result.stdout}\n{result.stderr}"


def render(destination: Path, **answers: object) -> Path:
    return render_template(destination, answers)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Render the default answers once for every test of this module."""
    return render(tmp_path_factory.mktemp("hygiene") / "project")


@pytest.fixture(scope="module")
def package_name(project: Path) -> str:
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    return pyproject["project"]["scripts"]["train"].split(".")[0]


def test_ruff_check_passes(project: Path) -> None:
    result = run([tool("ruff"), "check", "--no-cache", "."], project)

    assert result.returncode == 0, output_of(result)


@pytest.mark.parametrize(
    ("python_version", "task", "model_family", "use_gnn"),
    [
        ("3.10", "regression", "deepsets", False),
        ("3.12", "classification", "transformer", False),
        ("3.13", "regression", "particlenet", True),
    ],
)
def test_ruff_check_passes_on_other_python_versions(
    tmp_path: Path, python_version: str, task: str, model_family: str, use_gnn: bool
) -> None:
    """Ruff's pyupgrade rules follow requires-python, so each minimum version is linted."""
    project = render(
        tmp_path / "project",
        python_version=python_version,
        task=task,
        model_family=model_family,
        use_gnn=use_gnn,
    )

    result = run([tool("ruff"), "check", "--no-cache", "."], project)

    assert result.returncode == 0, output_of(result)


def test_ruff_format_passes(project: Path) -> None:
    result = run([tool("ruff"), "format", "--check", "--no-cache", "."], project)

    assert result.returncode == 0, output_of(result)


def test_mypy_passes(project: Path, tmp_path: Path) -> None:
    """Run mypy with the project's strict configuration, as its CI does."""
    pytest.importorskip("mypy", reason="mypy is not installed; `pip install mypy` provides it")
    command = [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "mypy-cache")]

    result = run(command, project)

    assert result.returncode == 0, output_of(result)


def test_repo_review_passes(project: Path) -> None:
    command = [tool("sp-repo-review", "sp-repo-review[cli]"), "--format", "json", "."]

    result = run(command, project)

    report = json.loads(result.stdout)
    failed = {
        code: check["description"]
        for code, check in report["checks"].items()
        if check["result"] is False
    }
    assert failed == {}
    assert result.returncode == 0, output_of(result)


def test_repo_review_skips_have_reasons(project: Path) -> None:
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))

    ignored = pyproject["tool"]["repo-review"]["ignore"]

    assert isinstance(ignored, dict)
    for code, reason in ignored.items():
        assert len(reason.split()) >= 5, f"{code} is skipped without a reason"


def test_pyproject_is_valid(project: Path) -> None:
    result = run([tool("validate-pyproject"), "pyproject.toml"], project)

    assert result.returncode == 0, output_of(result)


def test_pre_commit_config_is_valid(project: Path) -> None:
    result = run([tool("pre-commit"), "validate-config", ".pre-commit-config.yaml"], project)

    assert result.returncode == 0, output_of(result)
    assert result.stderr == "", output_of(result)


@pytest.mark.parametrize(
    ("path", "schema"),
    [
        (".github/workflows/ci.yml", "vendor.github-workflows"),
        (".github/dependabot.yml", "vendor.dependabot"),
        (".gitlab-ci.yml", "vendor.gitlab-ci"),
    ],
)
def test_ci_file_matches_schema(project: Path, path: str, schema: str) -> None:
    command = [tool("check-jsonschema"), "--builtin-schema", schema, path]
    if schema == "vendor.gitlab-ci":
        command[1:1] = ["--data-transform", "gitlab-ci"]

    result = run(command, project)

    assert result.returncode == 0, output_of(result)


def test_workflows_have_no_zizmor_findings(project: Path) -> None:
    result = run([tool("zizmor"), "--offline", "--no-progress", ".github"], project)

    assert result.returncode == 0, output_of(result)


def test_spelling(project: Path) -> None:
    result = run([tool("codespell"), "."], project)

    assert result.returncode == 0, output_of(result)


def test_markdown_is_formatted(project: Path) -> None:
    markdown = sorted(
        str(path.relative_to(project))
        for path in project.rglob("*.md")
        if not any(part.startswith(".") for part in path.relative_to(project).parts)
    )

    result = run([tool("mdformat", "mdformat mdformat-gfm"), "--check", *markdown], project)

    assert result.returncode == 0, output_of(result)


def test_nox_sessions_load(project: Path) -> None:
    result = run([sys.executable, "-m", "nox", "--list", "-f", "noxfile.py"], project)

    assert result.returncode == 0, output_of(result)
    for session in ("lint", "tests", "typecheck", "train"):
        assert f" {session} -> " in result.stdout, session


def test_gitignore_covers_outputs_not_sources(project: Path, tmp_path: Path) -> None:
    git = tool("git")
    repository = tmp_path / "repository"
    shutil.copytree(project, repository)
    assert run([git, "init", "-q"], repository).returncode == 0
    ignored = [
        "data/signal.root",
        "data/nested/background.root",
        "logs/train/runs/2024-01-01/metrics.json",
        "mlruns/0/meta.yaml",
        "mlflow.db",
        "wandb/offline-run-1/run.wandb",
        "lightning_logs/version_0/hparams.yaml",
        "src/pkg/__pycache__/module.cpython-311.pyc",
        ".nox/tests/bin/python",
    ]
    tracked = ["data/README.md", "src/pkg/data/toy.py", "configs/data/toy.yaml", "README.md"]

    for path in ignored:
        assert run([git, "check-ignore", "-q", path], repository).returncode == 0, path
    for path in tracked:
        assert run([git, "check-ignore", "-q", path], repository).returncode == 1, path


def test_wheel_contents(project: Path, package_name: str, tmp_path: Path) -> None:
    pytest.importorskip("hatchling", reason="building the wheel needs hatchling installed")
    command = [
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
        "--quiet", "--wheel-dir", str(tmp_path), str(project),
    ]  # fmt: skip

    result = run(command, project)

    assert result.returncode == 0, output_of(result)
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(name for name in names if name.endswith("entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    assert f"{package_name}/train.py" in names
    assert f"{package_name}/evaluate.py" in names
    assert any(name.endswith("licenses/LICENSE") for name in names)
    assert not any(name.startswith("tests/") for name in names)
    for script in ("train", "evaluate", "make-toy-data"):
        assert f"{script} = {package_name}." in scripts, script
