"""Expressions over branches in a restricted namespace, evaluated on chunks of events.

An expression can use ``np``/``numpy``, ``ak``/``awkward``, ``math``, ``vector`` (registered for
awkward, e.g. ``vector.zip({"px": ..., "py": ..., "pz": ..., "E": ...}).mass``), a few
built-ins, the reserved name ``tree_entry`` (the entry number in the file), and the variables of
the current source: new variables, aliases and branches, in that order of precedence.
Attribute names starting with an underscore are rejected, so expressions cannot reach
interpreter internals; still, configs are code, so load only configs you trust.
"""

from __future__ import annotations

import ast
import builtins
import functools
import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np
import vector

from .errors import ExpressionError, close_matches

vector.register_awkward()

MODULES: dict[str, Any] = {
    "np": np,
    "numpy": np,
    "ak": ak,
    "awkward": ak,
    "math": math,
    "vector": vector,
}
ALLOWED_BUILTINS = ("abs", "min", "max", "round", "len", "sum", "float", "int", "bool", "pow")
ENTRY_NAME = "tree_entry"
RESERVED_NAMES = frozenset(MODULES) | frozenset(ALLOWED_BUILTINS) | {ENTRY_NAME}
_GLOBALS = {
    "__builtins__": {name: getattr(builtins, name) for name in ALLOWED_BUILTINS},
    **MODULES,
}


@dataclass(frozen=True)
class ParsedExpression:
    """The compiled code of an expression and the variables it reads."""

    text: str
    code: Any
    variables: frozenset[str]


@functools.lru_cache(maxsize=4096)
def parse_expression(text: str) -> ParsedExpression:
    """Parse ``text`` and return its code and the variables (non-reserved names) it reads."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        msg = f"expression {text!r} is not valid Python: {error.msg} (column {error.offset})"
        raise ExpressionError(msg) from None
    loaded: set[str] = set()
    bound: set[str] = set()
    for node in ast.walk(tree):
        _reject_scalar_logic(text, node)
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            msg = (
                f"expression {text!r} accesses attribute {node.attr!r}; attributes starting "
                "with an underscore are not allowed"
            )
            raise ExpressionError(msg)
        if isinstance(node, ast.Name):
            if node.id.startswith("__"):
                msg = f"expression {text!r} uses the reserved name {node.id!r}"
                raise ExpressionError(msg)
            if isinstance(node.ctx, ast.Load):
                loaded.add(node.id)
            else:
                bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    code = compile(tree, f"<expression {text}>", "eval")
    return ParsedExpression(text, code, frozenset(loaded - bound - RESERVED_NAMES))


def _reject_scalar_logic(text: str, node: ast.AST) -> None:
    """Reject ``and``, ``or``, ``not`` and chained comparisons: they need a single truth value,
    and on arrays of events they fail with a message that does not point to the fix."""
    if isinstance(node, ast.BoolOp):
        operator = "&" if isinstance(node.op, ast.And) else "|"
        word = "and" if isinstance(node.op, ast.And) else "or"
        msg = (
            f"expression {text!r} uses {word!r}, which does not work element-wise on arrays: "
            f"use {operator!r} with each condition in parentheses, "
            f"e.g. (nMuon >= 2) {operator} (MET > 20)"
        )
        raise ExpressionError(msg)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        msg = (
            f"expression {text!r} uses 'not', which does not work element-wise on arrays: "
            "use '~' with the condition in parentheses, e.g. ~(nMuon >= 2)"
        )
        raise ExpressionError(msg)
    if isinstance(node, ast.Compare) and len(node.ops) > 1:
        msg = (
            f"expression {text!r} chains comparisons, which does not work element-wise on "
            "arrays: combine two comparisons with '&', e.g. (20 < MET) & (MET < 100)"
        )
        raise ExpressionError(msg)


class VariableResolver:
    """Resolves variable names of one source to new variables, aliases or branches.

    ``where`` names the source (file and tree) in error messages.
    """

    def __init__(
        self,
        branches: Collection[str],
        aliases: Mapping[str, str],
        new_variables: Mapping[str, str],
        where: str,
    ) -> None:
        self.branches = frozenset(branches)
        self.aliases = dict(aliases)
        self.new_variables = dict(new_variables)
        self.where = where

    def definition(self, name: str, stack: tuple[str, ...] = ()) -> str | None:
        """Return the expression defining ``name``, or None when ``name`` is a branch."""
        # Inside the definition of a name, that same name means the branch it redefines,
        # e.g. the alias ``Jet_pt: "Jet_pt / 1000"``.
        if name in stack and name in self.branches:
            return None
        if name in self.new_variables:
            return self.new_variables[name]
        if name in self.aliases:
            return self.aliases[name]
        if name in self.branches:
            return None
        known = [*self.new_variables, *self.aliases, *self.branches]
        hint = close_matches(name, known)
        msg = (
            f"{name!r} is not a branch, alias or new variable in {self.where}"
            + (f"; {hint}" if hint else "")
            + "; check the spelling, or define it under new_variables or the source's aliases"
        )
        raise ExpressionError(msg)

    def branches_for(self, expressions: Iterable[str]) -> set[str]:
        """Return the branches that evaluating ``expressions`` reads."""
        needed: set[str] = set()
        for text in expressions:
            self._collect(text, (), needed)
        return needed

    def _collect(self, text: str, stack: tuple[str, ...], needed: set[str]) -> None:
        for name in parse_expression(text).variables:
            if name in stack and name not in self.branches:
                cycle = " -> ".join((*stack, name))
                msg = f"variables refer to each other in a cycle: {cycle}"
                raise ExpressionError(msg)
            definition = self.definition(name, stack)
            if definition is None:
                needed.add(name)
            else:
                self._collect(definition, (*stack, name), needed)


class Evaluator:
    """Evaluates expressions on one chunk of events, caching each variable once."""

    def __init__(
        self,
        resolver: VariableResolver,
        arrays: Mapping[str, Any],
        length: int,
        entries: np.ndarray,
    ) -> None:
        self.resolver = resolver
        self.arrays = dict(arrays)
        self.length = length
        self.entries = entries
        self._cache: dict[tuple[str, tuple[str, ...]], Any] = {}

    def filtered(self, keep: np.ndarray) -> Evaluator:
        """Return an evaluator on the events where ``keep`` is True."""
        arrays = {name: array[keep] for name, array in self.arrays.items()}
        return Evaluator(self.resolver, arrays, int(np.count_nonzero(keep)), self.entries[keep])

    def evaluate(self, text: str, stack: tuple[str, ...] = ()) -> Any:
        """Evaluate ``text``; the result may be an awkward array, a NumPy array or a number."""
        key = (text, stack)
        if key in self._cache:
            return self._cache[key]
        parsed = parse_expression(text)
        values = {name: self._variable(name, stack) for name in parsed.variables}
        if ENTRY_NAME in text:
            values[ENTRY_NAME] = self.entries
        try:
            # NaN and inf results are not warned about here: the finiteness check after
            # evaluation reports them with the variable name and the entry.
            with np.errstate(all="ignore"):
                # The parser above rejects underscore attributes and dunder names, and the
                # namespace contains only the modules and built-ins listed at the top.
                result = eval(parsed.code, {**_GLOBALS, **values})  # noqa: S307
        except ExpressionError:
            raise
        except Exception as error:
            msg = (
                f"expression {text!r} failed on {self.resolver.where}: "
                f"{type(error).__name__}: {error}"
            )
            raise ExpressionError(msg) from error
        self._cache[key] = result
        return result

    def _variable(self, name: str, stack: tuple[str, ...]) -> Any:
        definition = self.resolver.definition(name, stack)
        if definition is None:
            return self.arrays[name]
        return self.evaluate(definition, (*stack, name))
