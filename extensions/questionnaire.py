"""Jinja helpers that copier.yml uses to derive defaults and validate answers.

Copier loads this file through copier-template-extensions' ``TemplateExtensionLoader``.
"""

from __future__ import annotations

import keyword
import re
import sys
import unicodedata

from jinja2 import Environment
from jinja2.ext import Extension

# Model families that exist for each (task, use_gnn) pair. A task or family that is added to the
# template gets one entry here; copier.yml reads nothing else to decide which choices are valid.
MODEL_FAMILIES: dict[tuple[str, bool], tuple[str, ...]] = {
    ("classification", False): ("mlp", "deepsets", "transformer"),
    ("regression", False): ("mlp", "deepsets", "transformer"),
    ("classification", True): ("particlenet",),
    ("regression", True): ("particlenet",),
}

EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")


def to_package_name(project_name: str) -> str:
    """Turn a project name such as "Higgs Tagger-2" into "higgs_tagger_2".

    A name that would be a keyword or a standard-library module gets the suffix "_ml", so the
    derived default always passes ``package_name_error``.
    """
    ascii_name = unicodedata.normalize("NFKD", project_name).encode("ascii", "ignore").decode()
    name = re.sub(r"[^0-9a-zA-Z]+", "_", ascii_name).strip("_").lower()
    if name and name[0].isdigit():
        name = f"pkg_{name}"
    if keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in sys.stdlib_module_names:
        name = f"{name}_ml"
    return name or "hep_ml_project"


def package_name_error(name: str) -> str:
    """Return why ``name`` cannot be the import name of the package, or "" when it can."""
    if not name.isidentifier() or not name.isascii():
        suggestion = to_package_name(name)
        return (
            f"package_name {name!r} is not a valid Python identifier: use lowercase letters, "
            f"digits and underscores, not starting with a digit (for example {suggestion!r})"
        )
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return f"package_name {name!r} is a Python keyword: choose another name, e.g. {name}_ml"
    if name in sys.stdlib_module_names:
        return (
            f"package_name {name!r} is a standard-library module and would shadow it: "
            f"choose another name, e.g. {name}_ml"
        )
    if name != name.lower():
        return f"package_name {name!r} has uppercase letters: use {name.lower()!r} (PEP 8)"
    return ""


def email_error(email: str) -> str:
    """Return why ``email`` is not a usable address, or "" when it is."""
    if EMAIL_PATTERN.match(email):
        return ""
    return f"author_email {email!r} is not an e-mail address of the form name@domain.org"


def model_families(task: str, use_gnn: bool) -> list[str]:
    """Return the model families that the template provides for ``task`` and ``use_gnn``."""
    return list(MODEL_FAMILIES.get((task, bool(use_gnn)), ()))


def model_family_error(family: str, task: str, use_gnn: bool) -> str:
    """Return why ``family`` does not fit ``task`` and ``use_gnn``, or "" when it does."""
    valid = model_families(task, use_gnn)
    if family in valid:
        return ""
    gnn = "with" if use_gnn else "without"
    if not valid:
        return f"task {task!r} has no model family {gnn} a graph neural network"
    message = (
        f"model_family {family!r} is not available for task {task!r} {gnn} a graph neural "
        f"network; valid choices: {', '.join(valid)}"
    )
    if family in model_families(task, not use_gnn):
        message += f", or set use_gnn={str(not use_gnn).lower()} for {family!r}"
    return message


def use_gnn_error(task: str, use_gnn: bool) -> str:
    """Return why ``use_gnn`` cannot be combined with ``task``, or "" when it can."""
    if model_families(task, use_gnn):
        return ""
    other = [t for (t, gnn) in MODEL_FAMILIES if gnn == bool(use_gnn)]
    gnn = "with" if use_gnn else "without"
    return f"task {task!r} is not available {gnn} a GNN; tasks {gnn} a GNN: {', '.join(other)}"


class QuestionnaireExtension(Extension):
    """Expose the helpers above to copier.yml as Jinja filters and globals."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["to_package_name"] = to_package_name
        environment.globals["package_name_error"] = package_name_error
        environment.globals["email_error"] = email_error
        environment.globals["model_families"] = model_families
        environment.globals["model_family_error"] = model_family_error
        environment.globals["use_gnn_error"] = use_gnn_error
