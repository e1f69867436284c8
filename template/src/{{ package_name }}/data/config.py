"""Typed form of the ``data`` config group, checked once before anything is read."""

from __future__ import annotations

import ast
import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import DataError, close_matches

NAN_POLICIES = ("fail", "drop")
LOADING_MODES = ("memory", "stream")
SAMPLE_LEVELS = ("event", "object")
SPLIT_METHODS = ("random", "modulo")
SCALING_METHODS = ("standard", "robust", "none")


@dataclass(frozen=True)
class SourceConfig:
    """Files of one physics process (or one sample) with a common tree name.

    ``aliases`` map the dataset's common variable names to expressions over this source's own
    branches, so files of different formats feed the same inputs.
    """

    name: str
    files: tuple[str, ...]
    tree: str = "events"
    label: str | None = None
    weight_scale: float = 1.0
    aliases: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ObjectsConfig:
    """A jagged object collection padded or truncated to ``max_length`` objects per event."""

    branches: tuple[str, ...]
    max_length: int
    sort_by: str | None = None
    selection: str | None = None
    pad_value: float = 0.0


@dataclass(frozen=True)
class InputsConfig:
    """Model inputs: event-level features (or per-object ones with ``samples: object``) and
    an optional padded object collection."""

    features: tuple[str, ...] = ()
    objects: ObjectsConfig | None = None


@dataclass(frozen=True)
class SplitConfig:
    """Train/validation/test assignment.

    ``random``: a hash of (seed, source, file name, entry) decides, so the assignment does not
    depend on chunking, workers or the order in which files are read. ``modulo``: the integer
    ``key`` (usually the event number) modulo ``k`` gives the fold. Fold ``fold`` is the test
    set, fold ``fold + 1`` (mod k) the validation set, and the others the training set.
    """

    method: str = "random"
    seed: int = 42
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    key: str | None = None
    k: int = 5
    fold: int = 0


@dataclass(frozen=True)
class PreprocessingConfig:
    """Per-variable transforms, applied in the order clip, log, scale.

    ``uncertainties`` maps a variable to the input that contains its uncertainty. That input is
    propagated through the variable's transform instead of being scaled on its own.
    """

    method: str = "standard"
    target_method: str = "standard"
    log: tuple[str, ...] = ()
    clip: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    uncertainties: dict[str, str] = field(default_factory=dict)
    unscaled: tuple[str, ...] = ()
    quantile_range: tuple[float, float] = (0.25, 0.75)
    fit_max_events: int = 1_000_000


@dataclass(frozen=True)
class LoadingConfig:
    """How events are read: all at once into memory, or streamed in chunks of entries.

    ``chunk_size`` counts entries per read. In stream mode a chunk combines pieces of up to
    ``files_per_chunk`` files, and ``shuffle_buffer`` samples are held back for shuffling.
    With ``read_ahead``, a thread reads the next chunk while the current one is processed.
    ``decompression_threads`` threads decompress the baskets of each read in the main process
    (0: the reading thread decompresses them); DataLoader workers always use their own thread.
    """

    mode: str = "memory"
    chunk_size: int = 100_000
    files_per_chunk: int = 16
    shuffle_buffer: int = 100_000
    read_ahead: bool = True
    decompression_threads: int = 2
    seed: int = 0


@dataclass(frozen=True)
class DataConfig:
    """The whole ``data`` config group, checked; :func:`parse_data_config` builds it."""

    sources: tuple[SourceConfig, ...]
    inputs: InputsConfig
    classes: tuple[str, ...] = ()
    label: str | None = None
    targets: tuple[str, ...] = ()
    samples: str = "event"
    weight: str | None = None
    balance_classes: bool = True
    selection: tuple[str, ...] = ()
    new_variables: dict[str, str] = field(default_factory=dict)
    observers: tuple[str, ...] = ()
    split: SplitConfig = field(default_factory=SplitConfig)
    preprocessing: PreprocessingConfig = field(default_factory=PreprocessingConfig)
    nan_policy: str = "fail"
    loading: LoadingConfig = field(default_factory=LoadingConfig)

    @property
    def is_classification(self) -> bool:
        return bool(self.classes)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.inputs.features

    @property
    def object_feature_names(self) -> tuple[str, ...]:
        return self.inputs.objects.branches if self.inputs.objects else ()


def _check_keys(cls: type, values: Mapping[str, Any], where: str) -> None:
    valid = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in valid:
            hint = close_matches(str(key), valid)
            msg = f"unknown key {key!r} in {where}; valid keys: {', '.join(valid)}" + (
                f" ({hint})" if hint else ""
            )
            raise DataError(msg)


def _as_tuple(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence):
        return tuple(str(item) for item in value)
    msg = f"{where} must be a string or a list of strings, got {value!r}"
    raise DataError(msg)


# Python types of the scalar fields that _check_scalars checks, by their annotation.
_SCALAR_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "str": (str,),
}


def _check_scalars(config: Any, where: str) -> None:
    """Raise DataError for a field of the dataclass ``config`` annotated int, float, bool or
    str whose value has another type (a bool is not taken for a number)."""
    for config_field in dataclasses.fields(config):
        type_name = str(config_field.type)
        expected = _SCALAR_TYPES.get(type_name)
        if expected is None:
            continue
        value = getattr(config, config_field.name)
        is_bool = isinstance(value, bool)
        if not isinstance(value, expected) or (is_bool and type_name != "bool"):
            article = "an" if type_name == "int" else "a"
            msg = f"{where}.{config_field.name} is {value!r}; it must be {article} {type_name}"
            raise DataError(msg)


def _choice(value: str, choices: Sequence[str], where: str) -> str:
    if value not in choices:
        msg = f"{where} is {value!r}; valid values: {', '.join(choices)}"
        raise DataError(msg)
    return value


def _parse_source(index: int, values: Mapping[str, Any]) -> SourceConfig:
    where = f"data.sources[{index}]"
    _check_keys(SourceConfig, values, where)
    if "files" not in values:
        msg = f"{where} has no 'files': give a path, a glob pattern or a list of them"
        raise DataError(msg)
    aliases = {str(k): str(v) for k, v in (values.get("aliases") or {}).items()}
    return SourceConfig(
        name=str(values.get("name", f"source{index}")),
        files=_as_tuple(values["files"], f"{where}.files"),
        tree=str(values.get("tree", "events")),
        label=None if values.get("label") is None else str(values["label"]),
        weight_scale=float(values.get("weight_scale", 1.0)),
        aliases=aliases,
    )


def _parse_objects(values: Mapping[str, Any] | None) -> ObjectsConfig | None:
    if not values:
        return None
    _check_keys(ObjectsConfig, values, "data.inputs.objects")
    branches = _as_tuple(values.get("branches"), "data.inputs.objects.branches")
    if not branches:
        msg = "data.inputs.objects.branches is empty: list the per-object branches"
        raise DataError(msg)
    max_length = int(values.get("max_length", 0))
    if max_length < 1:
        msg = (
            f"data.inputs.objects.max_length is {max_length}; it must be a positive number "
            "of objects per event (longer collections are truncated, shorter ones padded)"
        )
        raise DataError(msg)
    pad_value = float(values.get("pad_value", 0.0))
    if not math.isfinite(pad_value):
        msg = (
            f"data.inputs.objects.pad_value is {pad_value}; it must be finite, because padded "
            "slots pass through the model and NaN would poison masked sums"
        )
        raise DataError(msg)
    return ObjectsConfig(
        branches=branches,
        max_length=max_length,
        sort_by=values.get("sort_by"),
        selection=values.get("selection"),
        pad_value=pad_value,
    )


def _parse_split(values: Mapping[str, Any]) -> SplitConfig:
    _check_keys(SplitConfig, values, "data.split")
    split = SplitConfig(**values)
    _check_scalars(split, "data.split")
    _choice(split.method, SPLIT_METHODS, "data.split.method")
    if split.method == "random":
        fractions = (split.val_fraction, split.test_fraction)
        if min(fractions) < 0 or sum(fractions) >= 1:
            msg = (
                f"data.split fractions val={split.val_fraction}, test={split.test_fraction} "
                "must be non-negative and leave a training fraction above zero"
            )
            raise DataError(msg)
    else:
        if not split.key:
            msg = (
                "data.split.method is 'modulo' but data.split.key is not set: give the "
                "event-number branch (or an expression) whose value modulo k picks the fold"
            )
            raise DataError(msg)
        if split.k < 3 or not 0 <= split.fold < split.k:
            msg = (
                f"data.split has k={split.k}, fold={split.fold}; modulo splitting needs k >= 3 "
                "(one test fold, one validation fold, the rest for training) and 0 <= fold < k"
            )
            raise DataError(msg)
    return split


def _parse_preprocessing(values: Mapping[str, Any]) -> PreprocessingConfig:
    _check_keys(PreprocessingConfig, values, "data.preprocessing")
    clip = {}
    for name, bounds in (values.get("clip") or {}).items():
        if not isinstance(bounds, Sequence) or len(bounds) != 2:
            msg = (
                f"data.preprocessing.clip.{name} is {bounds!r}; give [low, high] (null for an "
                "open side)"
            )
            raise DataError(msg)
        low, high = (None if b is None else float(b) for b in bounds)
        clip[str(name)] = (low, high)
    config = PreprocessingConfig(
        method=str(values.get("method", "standard")),
        target_method=str(values.get("target_method", "standard")),
        log=_as_tuple(values.get("log"), "data.preprocessing.log"),
        clip=clip,
        uncertainties={str(k): str(v) for k, v in (values.get("uncertainties") or {}).items()},
        unscaled=_as_tuple(values.get("unscaled"), "data.preprocessing.unscaled"),
        quantile_range=tuple(values.get("quantile_range", (0.25, 0.75))),
        fit_max_events=int(values.get("fit_max_events", 1_000_000)),
    )
    _choice(config.method, SCALING_METHODS, "data.preprocessing.method")
    _choice(config.target_method, SCALING_METHODS, "data.preprocessing.target_method")
    low, high = config.quantile_range
    if not 0 <= low < high <= 1:
        msg = (
            f"data.preprocessing.quantile_range is {config.quantile_range}; "
            "give two quantiles 0 <= low < high <= 1"
        )
        raise DataError(msg)
    return config


def _parse_loading(values: Mapping[str, Any]) -> LoadingConfig:
    _check_keys(LoadingConfig, values, "data.loading")
    loading = LoadingConfig(**values)
    _check_scalars(loading, "data.loading")
    _choice(loading.mode, LOADING_MODES, "data.loading.mode")
    if loading.chunk_size < 1 or loading.files_per_chunk < 1 or loading.shuffle_buffer < 0:
        msg = (
            f"data.loading has chunk_size={loading.chunk_size}, files_per_chunk="
            f"{loading.files_per_chunk}, shuffle_buffer={loading.shuffle_buffer}; chunk_size "
            "and files_per_chunk must be positive and shuffle_buffer non-negative"
        )
        raise DataError(msg)
    if loading.decompression_threads < 0:
        msg = (
            f"data.loading.decompression_threads is {loading.decompression_threads}; use 0 to "
            "decompress in the reading thread, or a positive number of threads"
        )
        raise DataError(msg)
    return loading


def parse_data_config(
    *,
    sources: Sequence[Mapping[str, Any]],
    inputs: Mapping[str, Any],
    classes: Sequence[str] | None = None,
    label: str | None = None,
    targets: Sequence[str] | None = None,
    samples: str = "event",
    weight: str | None = None,
    balance_classes: bool = True,
    selection: str | Sequence[str] | None = None,
    new_variables: Mapping[str, str] | None = None,
    observers: Sequence[str] | None = None,
    split: Mapping[str, Any] | None = None,
    preprocessing: Mapping[str, Any] | None = None,
    nan_policy: str = "fail",
    loading: Mapping[str, Any] | None = None,
) -> DataConfig:
    """Build a :class:`DataConfig` from plain containers, raising :class:`DataError` on the
    first inconsistency."""
    if not sources:
        msg = "data.sources is empty: list at least one source of ROOT files"
        raise DataError(msg)
    source_configs = tuple(_parse_source(i, s) for i, s in enumerate(sources))
    names = [s.name for s in source_configs]
    if len(set(names)) != len(names):
        msg = f"data.sources have repeated names {names}; give each a unique name"
        raise DataError(msg)

    _check_keys(InputsConfig, inputs, "data.inputs")
    inputs_config = InputsConfig(
        features=_as_tuple(inputs.get("features"), "data.inputs.features"),
        objects=_parse_objects(inputs.get("objects")),
    )
    if not inputs_config.features and inputs_config.objects is None:
        msg = "data.inputs declares neither features nor objects: declare at least one"
        raise DataError(msg)

    config = DataConfig(
        sources=source_configs,
        inputs=inputs_config,
        classes=_as_tuple(classes, "data.classes"),
        label=label,
        targets=_as_tuple(targets, "data.targets"),
        samples=_choice(samples, SAMPLE_LEVELS, "data.samples"),
        weight=None if weight is None else str(weight),
        balance_classes=bool(balance_classes),
        selection=_as_tuple(selection, "data.selection"),
        new_variables={str(k): str(v) for k, v in (new_variables or {}).items()},
        observers=_as_tuple(observers, "data.observers"),
        split=_parse_split(split or {}),
        preprocessing=_parse_preprocessing(preprocessing or {}),
        nan_policy=_choice(nan_policy, NAN_POLICIES, "data.nan_policy"),
        loading=_parse_loading(loading or {}),
    )
    _check_task(config)
    _check_names(config)
    _check_targets_not_inputs(config)
    return config


def _check_task(config: DataConfig) -> None:
    if bool(config.classes) == bool(config.targets):
        msg = (
            "the data config must declare either 'classes' (classification) or 'targets' "
            "(regression), not both and not neither"
        )
        raise DataError(msg)
    if config.samples == "object" and config.inputs.objects is not None:
        msg = (
            "data.samples is 'object' (one sample per object), so data.inputs.objects is not "
            "used: list the per-object branches under data.inputs.features instead"
        )
        raise DataError(msg)
    if not config.classes:
        return
    labelled = [s.name for s in config.sources if s.label is not None]
    if config.label is not None and labelled:
        msg = (
            f"data.label is set and sources {labelled} also set a label; use one of the two: "
            "a label per source (one file per process) or a label expression"
        )
        raise DataError(msg)
    if config.label is None:
        for source in config.sources:
            if source.label is None:
                msg = (
                    f"source {source.name!r} has no label and data.label is not set; give each "
                    f"source a label from data.classes {list(config.classes)}, or set data.label"
                )
                raise DataError(msg)
            if source.label not in config.classes:
                hint = close_matches(source.label, config.classes)
                msg = (
                    f"source {source.name!r} has label {source.label!r}, which is not in "
                    f"data.classes {list(config.classes)}" + (f" ({hint})" if hint else "")
                )
                raise DataError(msg)


def _check_names(config: DataConfig) -> None:
    for source in config.sources:
        clash = sorted(set(source.aliases) & set(config.new_variables))
        if clash:
            msg = (
                f"source {source.name!r} defines aliases {clash} that are also new_variables; "
                "rename one of them, because the same name cannot mean two things"
            )
            raise DataError(msg)
    places = {
        "data.inputs.features": config.feature_names,
        "data.inputs.objects.branches": config.object_feature_names,
        "data.targets": config.targets,
    }
    inputs = list(dict.fromkeys(name for names in places.values() for name in names))
    prep = config.preprocessing
    named = {
        "data.preprocessing.log": list(prep.log),
        "data.preprocessing.clip": list(prep.clip),
        "data.preprocessing.unscaled": list(prep.unscaled),
        "data.preprocessing.uncertainties": [*prep.uncertainties, *prep.uncertainties.values()],
    }
    for where, names in named.items():
        for name in names:
            if name in inputs:
                continue
            msg = f"{where} names {name!r}, which is not an input feature or target"
            hint = close_matches(name, inputs)
            if hint:
                # The typo may be in the inputs rather than here, so both places are named.
                lists = [place for place, listed in places.items() if close_matches(name, listed)]
                msg += f"; {hint}. Fix the spelling in {' or '.join(lists)} or in {where}"
            else:
                msg += f"; add it to the inputs or data.targets, or remove it from {where}"
            raise DataError(msg)
    for value, error in prep.uncertainties.items():
        same_group = (value in config.feature_names and error in config.feature_names) or (
            value in config.object_feature_names and error in config.object_feature_names
        )
        if not same_group:
            msg = (
                f"data.preprocessing.uncertainties maps {value!r} to {error!r}; both must be "
                "event-level features or both object branches"
            )
            raise DataError(msg)


def _check_targets_not_inputs(config: DataConfig) -> None:
    """Reject a regression target or a label expression that is also a model input, because
    the model would then learn to copy that input.

    Each name is followed through new variables and the source's aliases to the expression
    behind it, so an alias of the target also counts as the target.
    """
    predicted = [("target", "data.targets", target) for target in config.targets]
    if config.classes and config.label is not None:
        predicted.append(("label", "data.label", config.label))
    inputs = [("input feature", "data.inputs.features", name) for name in config.feature_names]
    inputs += [
        ("object branch", "data.inputs.objects.branches", name)
        for name in config.object_feature_names
    ]
    for source in config.sources:
        for kind, place, target in predicted:
            expression = _defining_expression(target, source, config.new_variables)
            for input_kind, input_place, name in inputs:
                if _defining_expression(name, source, config.new_variables) != expression:
                    continue
                if name == target:
                    problem = f"{target!r} is both a {kind} ({place}) and an {input_kind}"
                else:
                    problem = (
                        f"{kind} {target!r} ({place}) and {input_kind} {name!r} are the same "
                        f"expression in source {source.name!r}"
                    )
                msg = (
                    f"{problem}; the model must not get its {kind} as an input: remove "
                    f"{name!r} from {input_place}"
                )
                raise DataError(msg)


def _defining_expression(name: str, source: SourceConfig, new_variables: Mapping[str, str]) -> str:
    """Return the expression behind ``name`` in ``source``, normalised so that spacing does
    not matter. New variables and aliases that are a plain name are followed, and a branch
    name is its own expression. As in evaluation, new variables take precedence over aliases.
    """
    seen: set[str] = set()
    text = name
    while True:
        try:
            tree = ast.parse(text.strip(), mode="eval").body
        except SyntaxError:
            return text.strip()  # evaluating the expression reports the syntax error
        if not isinstance(tree, ast.Name) or tree.id in seen:
            return ast.dump(tree)
        # Inside its own definition a name means the branch it redefines.
        seen.add(tree.id)
        if tree.id in new_variables:
            text = new_variables[tree.id]
        elif tree.id in source.aliases:
            text = source.aliases[tree.id]
        else:
            return ast.dump(tree)
