"""The questionnaire through copier's own API: defaults, rejected answers, the answers file, and
rendered trees that hold exactly the files their answers need and no leftover Jinja."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from combinations import TEMPLATE_ROOT, Combination, full_matrix
from questionnaire import MODEL_FAMILIES
from rendering import render, snapshot_template

# One render takes well under a second. Every test of this module runs on one pytest-xdist
# worker, so the session cache below renders each combination once.
pytestmark = pytest.mark.xdist_group("questionnaire")

COPIER_YML = yaml.safe_load((TEMPLATE_ROOT / "copier.yml").read_text(encoding="utf-8"))
QUESTIONS = {key for key in COPIER_YML if not key.startswith("_")}
COMPUTED = {key for key in QUESTIONS if str(COPIER_YML[key].get("when", True)).lower() == "false"}
ASKED = QUESTIONS - COMPUTED

LICENSES = ("MIT", "BSD-3-Clause", "Apache-2.0")
PYTHON_VERSIONS = ("3.10", "3.11", "3.12", "3.13")
TRACKER_PACKAGES = {"wandb": "wandb", "tensorboard": "tensorboard", "mlflow": "mlflow", "csv": None}
# The command (or file) that the rendered README gives for viewing runs, per tracker.
TRACKER_COMMANDS = {
    "wandb": "wandb sync",
    "tensorboard": "tensorboard --logdir",
    "mlflow": "mlflow ui --backend-store-uri sqlite:///",
    "csv": "csv/metrics.csv",
}

# Jinja that survived rendering: an answer or copier variable in `{{ }}`, or a statement tag.
# GitHub's `${{ }}` expressions and Python's `{{` escapes in f-strings do not match.
LEFTOVER_JINJA = re.compile(
    r"\{\{-?\s*(?:" + "|".join(sorted(QUESTIONS)) + r"|_copier_\w+)\b"
    r"|\{%-?\s*(?:if|elif|else|endif|for|endfor|set|raw|endraw|include|import|macro)\b"
)


def copy(destination: Path, template: Path = TEMPLATE_ROOT, **answers: object) -> Path:
    """Render ``template`` (by default this repository) into ``destination``."""
    return render(destination, answers, template)


def read_answers(project: Path) -> dict[str, object]:
    return yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))


def read_pyproject(project: Path) -> dict[str, object]:
    return tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))


def files_of(project: Path) -> list[Path]:
    return sorted(path for path in project.rglob("*") if path.is_file())


def with_metadata_answers(combination: Combination, index: int) -> dict[str, object]:
    """Add a licence and a Python version to ``combination``'s answers, cycling through both."""
    return {
        **combination.answers(),
        "license": LICENSES[index % len(LICENSES)],
        "python_version": PYTHON_VERSIONS[index % len(PYTHON_VERSIONS)],
    }


MATRIX = full_matrix()


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory):
    """Return a function that renders combination ``index`` of the full matrix once per session.

    The renders start from a plain copy of the working tree, which copier renders faster than
    the git repository itself.
    """
    template = snapshot_template(tmp_path_factory.mktemp("template"))
    cache: dict[int, Path] = {}

    def render(index: int) -> tuple[Path, dict[str, object]]:
        answers = with_metadata_answers(MATRIX[index], index)
        if index not in cache:
            destination = tmp_path_factory.mktemp("render") / MATRIX[index].name
            cache[index] = copy(destination, template, **answers)
        return cache[index], answers

    return render


# Defaults


def test_defaults_render(tmp_path: Path) -> None:
    project = copy(tmp_path / "project")

    answers = read_answers(project)
    assert answers["package_name"] == "hep_ml_project"
    assert answers["task"] == "classification"
    assert answers["use_gnn"] is False
    assert answers["model_family"] == "mlp"
    assert (project / "pyproject.toml").is_file()
    assert (project / "README.md").is_file()
    assert (project / "src" / "hep_ml_project").is_dir()


@pytest.mark.parametrize(
    ("project_name", "package_name"),
    [
        ("Higgs Tagger-2", "higgs_tagger_2"),
        ("2HDM search", "pkg_2hdm_search"),
        ("Désintégration du τ", "desintegration_du"),
        ("  Jet   energy scale ", "jet_energy_scale"),
        ("class", "class_ml"),
        ("JSON", "json_ml"),
    ],
)
def test_package_name_derived_from_project_name(
    tmp_path: Path, project_name: str, package_name: str
) -> None:
    project = copy(tmp_path / "project", project_name=project_name)

    assert read_answers(project)["package_name"] == package_name
    assert (project / "src" / package_name).is_dir()


def test_gnn_default_family_is_valid(tmp_path: Path) -> None:
    project = copy(tmp_path / "project", use_gnn=True)

    answers = read_answers(project)
    assert answers["model_family"] in MODEL_FAMILIES[(answers["task"], True)]


# Rejected answers


@pytest.mark.parametrize(
    ("package_name", "expected_fix"),
    [
        ("2fast", "'pkg_2fast'"),
        ("My-Pkg", "'my_pkg'"),
        ("MyPkg", "'mypkg'"),
        ("class", "class_ml"),
        ("json", "json_ml"),
        ("typing", "typing_ml"),
    ],
)
def test_bad_package_name_rejected(tmp_path: Path, package_name: str, expected_fix: str) -> None:
    with pytest.raises(ValueError, match="package_name") as error:
        copy(tmp_path / "project", package_name=package_name)

    message = str(error.value)
    assert repr(package_name) in message
    assert expected_fix in message
    assert not (tmp_path / "project" / "pyproject.toml").exists()


@pytest.mark.parametrize("email", ["nope", "name@localhost", "first last@example.org", "a@b.c"])
def test_bad_email_rejected(tmp_path: Path, email: str) -> None:
    with pytest.raises(ValueError, match="author_email") as error:
        copy(tmp_path / "project", author_email=email)

    message = str(error.value)
    assert repr(email) in message
    assert "name@domain.org" in message


def test_empty_project_name_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="project_name must not be empty"):
        copy(tmp_path / "project", project_name="   ")


@pytest.mark.parametrize(
    ("task", "use_gnn", "model_family", "valid"),
    [
        ("regression", True, "mlp", "particlenet"),
        ("classification", True, "transformer", "particlenet"),
        ("classification", False, "particlenet", "mlp, deepsets, transformer"),
        ("regression", False, "particlenet", "mlp, deepsets, transformer"),
    ],
)
def test_impossible_model_family_rejected(
    tmp_path: Path, task: str, use_gnn: bool, model_family: str, valid: str
) -> None:
    with pytest.raises(ValueError, match="model_family") as error:
        copy(tmp_path / "project", task=task, use_gnn=use_gnn, model_family=model_family)

    message = str(error.value)
    assert repr(model_family) in message
    assert repr(task) in message
    assert f"valid choices: {valid}" in message
    assert f"or set use_gnn={str(not use_gnn).lower()} for {model_family!r}" in message
    assert not (tmp_path / "project" / "pyproject.toml").exists()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("task", "tracking"),
        ("tracker", "neptune"),
        ("accelerator", "tpu"),
        ("license", "GPL-3.0"),
        ("python_version", "3.9"),
    ],
)
def test_unknown_choice_rejected(tmp_path: Path, key: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"Invalid choice for '{key}'") as error:
        copy(tmp_path / "project", **{key: value})

    assert repr(value) in str(error.value)


def test_cli_rejects_bad_answer(tmp_path: Path) -> None:
    executable = shutil.which("copier", path=str(Path(sys.executable).parent)) or shutil.which(
        "copier"
    )
    if executable is None:
        pytest.skip("the copier command is not installed next to this Python or on PATH")
    destination = tmp_path / "project"

    result = subprocess.run(
        [
            executable, "copy", "--trust", "--defaults", "--vcs-ref", "HEAD",
            "--data", "package_name=class", str(TEMPLATE_ROOT), str(destination),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )  # fmt: skip

    assert result.returncode != 0
    assert "package_name 'class' is a Python keyword" in result.stderr
    assert not (destination / "pyproject.toml").exists()


# The answers file


def test_answers_file_stores_questions_only(tmp_path: Path) -> None:
    project = copy(tmp_path / "project", tracker="mlflow", license="Apache-2.0")

    answers = read_answers(project)
    stored_questions = {key for key in answers if not key.startswith("_")}
    assert stored_questions == ASKED
    assert not COMPUTED & set(answers)
    assert answers["tracker"] == "mlflow"
    assert answers["license"] == "Apache-2.0"
    assert set(answers) - stored_questions == {"_commit", "_src_path"}


def test_answers_file_warns_against_editing(tmp_path: Path) -> None:
    project = copy(tmp_path / "project")

    first_line = (project / ".copier-answers.yml").read_text(encoding="utf-8").splitlines()[0]
    assert first_line.startswith("#")
    assert "do not edit" in first_line


# Every combination


@pytest.mark.parametrize("index", range(len(MATRIX)), ids=[c.name for c in MATRIX])
def test_no_leftover_jinja_or_empty_files(rendered, index: int) -> None:
    project, _ = rendered(index)

    for path in files_of(project):
        relative = path.relative_to(project).as_posix()
        assert not relative.endswith(".jinja"), relative
        assert "{{" not in relative, relative
        assert "{%" not in relative, relative
        text = path.read_text(encoding="utf-8")
        assert text.strip(), f"{relative} is empty"
        match = LEFTOVER_JINJA.search(text)
        assert match is None, f"{relative} holds leftover Jinja: {match and match.group(0)!r}"


@pytest.mark.parametrize("index", range(len(MATRIX)), ids=[c.name for c in MATRIX])
def test_rendered_files_pass_hygiene_hooks(rendered, index: int) -> None:
    """Check what the end-of-file-fixer and trailing-whitespace pre-commit hooks check."""
    project, _ = rendered(index)

    for path in files_of(project):
        relative = path.relative_to(project).as_posix()
        text = path.read_text(encoding="utf-8")
        assert text.endswith("\n"), f"{relative} does not end with a newline"
        assert not text.endswith("\n\n"), f"{relative} ends with blank lines"
        for number, line in enumerate(text.splitlines(), start=1):
            assert line == line.rstrip(), f"{relative}:{number} has trailing whitespace"


@pytest.mark.parametrize("index", range(len(MATRIX)), ids=[c.name for c in MATRIX])
def test_rendered_files_parse(rendered, index: int) -> None:
    project, _ = rendered(index)

    for path in files_of(project):
        relative = path.relative_to(project).as_posix()
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".py":
            ast.parse(text, filename=relative)
        elif path.suffix in {".yaml", ".yml"}:
            yaml.safe_load(text)
        elif path.suffix == ".toml":
            tomllib.loads(text)


@pytest.mark.parametrize("index", range(len(MATRIX)), ids=[c.name for c in MATRIX])
def test_files_match_answers(rendered, index: int) -> None:
    project, answers = rendered(index)
    package = project / "src" / str(answers["package_name"])
    pyproject = read_pyproject(project)

    assert package.is_dir()
    model_files = {path.stem for path in (package / "models").glob("*.py")}
    chosen_family = answers["model_family"]
    other_families = {family for families in MODEL_FAMILIES.values() for family in families} - {
        chosen_family
    }
    assert chosen_family in model_files
    assert not model_files & other_families

    tracker = answers["tracker"]
    dependencies = " ".join(pyproject["project"]["dependencies"])
    for name, package_name in TRACKER_PACKAGES.items():
        if package_name is None:
            continue
        assert (package_name in dependencies) == (name == tracker), package_name

    licence_text = (project / "LICENSE").read_text(encoding="utf-8")
    assert pyproject["project"]["license"] == answers["license"]
    expected_heading = {
        "MIT": "MIT License",
        "BSD-3-Clause": "BSD 3-Clause License",
        "Apache-2.0": "Apache License",
    }[answers["license"]]
    assert expected_heading in licence_text.splitlines()[0]
    assert pyproject["project"]["requires-python"] == f">={answers['python_version']}"

    workflow = (project / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8")
    assert f'"{answers["python_version"]}"' in workflow
    assert ("WANDB_MODE" in workflow) == (tracker == "wandb")

    readme = (project / "README.md").read_text(encoding="utf-8")
    for name, command in TRACKER_COMMANDS.items():
        assert (command in readme) == (name == tracker), command


@pytest.mark.parametrize("index", range(len(MATRIX)), ids=[c.name for c in MATRIX])
def test_configs_match_answers(rendered, index: int) -> None:
    project, answers = rendered(index)
    configs = project / "configs"

    data_configs = {path.stem for path in (configs / "data").glob("*.yaml")}
    other_tasks = {"classification", "regression"} - {answers["task"]}
    assert f"toy_{answers['task']}" in data_configs
    assert not data_configs & {f"toy_{task}" for task in other_tasks}
    model_configs = {path.stem for path in (configs / "model").glob("*.yaml")}
    assert model_configs == {answers["model_family"]}
    task_configs = {path.stem for path in (configs / "task").glob("*.yaml")}
    assert task_configs == {answers["task"]}
    logger_configs = {path.stem for path in (configs / "logger").glob("*.yaml")}
    assert logger_configs == {answers["tracker"]}
    trainer = yaml.safe_load((configs / "trainer" / "default.yaml").read_text(encoding="utf-8"))
    assert trainer["accelerator"] == answers["accelerator"]
