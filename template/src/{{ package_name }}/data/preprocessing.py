"""Per-variable transforms (clip, log, standard or robust scaling) fitted on the training split.

The fitted state is a plain dict of numbers and strings. It goes into the Lightning checkpoint
through the data module's ``state_dict``, and into a JSON sidecar from which any other program
can apply the same transforms.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import norm

from ..atomic_write import atomic_output
from .config import PreprocessingConfig
from .errors import DataError

log = logging.getLogger(__name__)

STATE_VERSION = 1


@dataclass
class VariableTransform:
    """The transform of one variable: clip to ``[low, high]``, then ``log``, then subtract
    ``center`` and divide by ``scale``. An uncertainty variable (``uncertainty_of`` set) is
    not transformed itself: it is propagated through the transform of that variable."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    center: float = 0.0
    scale: float = 1.0
    uncertainty_of: str | None = None

    @property
    def reshapes(self) -> bool:
        """Whether clip or log changes values before scaling."""
        return self.log or self.low is not None or self.high is not None

    def shape(self, values: np.ndarray, where: str, real: np.ndarray | None = None) -> np.ndarray:
        """Apply clip and log, the part of the transform that needs no fitting. Only entries
        where ``real`` is True (all when None) must be positive for the log."""
        if self.low is not None or self.high is not None:
            values = np.clip(values, self.low, self.high)
        if self.log:
            bad = values <= 0 if real is None else (values <= 0) & real
            if np.any(bad):
                msg = (
                    f"log transform of {self.name!r} ({where}) needs positive values, found "
                    f"{int(np.count_nonzero(bad))} values <= 0 (minimum {values[bad].min():.4g}); "
                    "clip it with a positive lower bound in data.preprocessing.clip, or remove "
                    "it from data.preprocessing.log"
                )
                raise DataError(msg)
            with np.errstate(divide="ignore", invalid="ignore"):
                values = np.log(values)
        return values

    def invert(self, values: np.ndarray) -> np.ndarray:
        values = values * self.scale + self.center
        return np.exp(values) if self.log else values

    def derivative(self, values: np.ndarray) -> np.ndarray:
        """Return d(transform)/d(value), for propagating uncertainties to first order."""
        derivative = np.full(values.shape, 1.0 / self.scale)
        inside = np.ones(values.shape, dtype=bool)
        if self.low is not None:
            inside &= values > self.low
        if self.high is not None:
            inside &= values < self.high
        derivative[~inside] = 0.0
        if self.log:
            clipped = np.clip(values, self.low, self.high)
            with np.errstate(divide="ignore", invalid="ignore"):
                derivative = np.where(inside, derivative / clipped, 0.0)
        return derivative


class Preprocessor:
    """Transforms of the event-level features, the object branches and the regression targets.

    Padded object slots are left out of the fit and hold the pad value after
    :meth:`transform_objects`.
    """

    def __init__(
        self,
        config: PreprocessingConfig,
        feature_names: Sequence[str],
        object_feature_names: Sequence[str] = (),
        target_names: Sequence[str] = (),
    ) -> None:
        self.config = config
        self.features = [self._make(name, config) for name in feature_names]
        self.objects = [self._make(name, config) for name in object_feature_names]
        self.targets = [self._make(name, config) for name in target_names]
        self.fitted = False

    @staticmethod
    def _make(name: str, config: PreprocessingConfig) -> VariableTransform:
        low, high = config.clip.get(name, (None, None))
        errors = {error: value for value, error in config.uncertainties.items()}
        return VariableTransform(
            name=name, low=low, high=high, log=name in config.log, uncertainty_of=errors.get(name)
        )

    # Fitting -----------------------------------------------------------------------------------

    def fit(
        self,
        features: np.ndarray,
        objects: np.ndarray | None = None,
        mask: np.ndarray | None = None,
        targets: np.ndarray | None = None,
    ) -> Preprocessor:
        """Fit centres and scales on training-split arrays (at most ``fit_max_events`` rows)."""
        rng = np.random.default_rng(0)
        rows = np.arange(len(features))
        if len(rows) > self.config.fit_max_events:
            rows = np.sort(rng.choice(rows, self.config.fit_max_events, replace=False))
        for index, transform in enumerate(self.features):
            self._fit_one(transform, features[rows, index], self.config.method, "features")
        if self.objects:
            if objects is None or mask is None:
                msg = "object transforms need the objects and their mask to fit"
                raise ValueError(msg)
            real = mask[rows]
            if not real.any():
                msg = (
                    "every event of the training split has zero objects, so the object "
                    "preprocessing cannot be fitted; check inputs.objects and the selection"
                )
                raise DataError(msg)
            for index, transform in enumerate(self.objects):
                values = objects[rows, :, index][real]
                self._fit_one(transform, values, self.config.method, "objects")
        if self.targets:
            if targets is None:
                msg = "target transforms need the targets to fit"
                raise ValueError(msg)
            for index, transform in enumerate(self.targets):
                values = targets[rows, index]
                self._fit_one(transform, values, self.config.target_method, "targets")
        self.fitted = True
        return self

    def _fit_one(
        self, transform: VariableTransform, values: np.ndarray, method: str, group: str
    ) -> None:
        if transform.uncertainty_of is not None:
            return
        if method == "none" or transform.name in self.config.unscaled:
            transform.center, transform.scale = 0.0, 1.0
            return
        shaped = transform.shape(values.astype(np.float64), f"training split, {group}")
        if method == "standard":
            center, scale = float(np.mean(shaped)), float(np.std(shaped))
        else:
            low, high = self.config.quantile_range
            q_low, median, q_high = np.quantile(shaped, [low, 0.5, high])
            # Divide by the width that the quantile range has for a unit Gaussian, so robust
            # and standard scaling agree on Gaussian data.
            width = float(norm.ppf(high) - norm.ppf(low))
            center, scale = float(median), float((q_high - q_low) / width)
        if not np.isfinite(scale) or scale <= 0:
            log.warning(
                "%s %r is constant on the training split; it is centred but not scaled",
                group,
                transform.name,
            )
            scale = 1.0
        transform.center, transform.scale = center, scale

    # Transforming ----------------------------------------------------------------------------

    def transform_features(self, features: np.ndarray, *, in_place: bool = False) -> np.ndarray:
        """Return transformed event-level features, shape ``(n, F)``, float32.

        ``in_place=True`` overwrites ``features`` when it is float32 already, which saves a copy
        of every chunk in streaming.
        """
        return self._transform(self.features, features, "features", None, in_place)

    def transform_objects(
        self, objects: np.ndarray, mask: np.ndarray, pad_value: float, *, in_place: bool = False
    ) -> np.ndarray:
        """Return transformed objects ``(n, N, C)``, float32; padded slots hold ``pad_value``."""
        out = self._transform(self.objects, objects, "objects", mask, in_place)
        np.copyto(out, np.float32(pad_value), where=~mask[..., None])
        return out

    def transform_target(self, targets: np.ndarray, *, in_place: bool = False) -> np.ndarray:
        """Return transformed regression targets, shape ``(n, T)``, float32."""
        return self._transform(self.targets, targets, "targets", None, in_place)

    def inverse_transform_target(self, targets: np.ndarray) -> np.ndarray:
        """Return regression targets (or predictions) in physical units from model units."""
        values = np.asarray(targets, dtype=np.float64)
        if values.ndim == 1:
            values = values[:, None]
        columns = [t.invert(values[:, i]) for i, t in enumerate(self.targets)]
        return np.stack(columns, axis=1)

    def transform_object_columns(self, columns: list[np.ndarray]) -> list[np.ndarray]:
        """Return the transformed values of real objects, one flat array per object branch.

        Streaming applies this to the flat content of the jagged branches before padding,
        which touches only real objects and leaves the padded slots at the pad value.
        """
        return self._transform_columns(self.objects, columns, "objects", None)

    def _transform(
        self,
        transforms: list[VariableTransform],
        values: np.ndarray,
        group: str,
        real: np.ndarray | None,
        in_place: bool,
    ) -> np.ndarray:
        """Transform the last axis of ``values`` (float32 result)."""
        if not transforms:
            return values.astype(np.float32, copy=False)
        columns = [values[..., index] for index in range(len(transforms))]
        transformed = self._transform_columns(transforms, columns, group, real)
        out = (
            values if in_place and values.dtype == np.float32 else np.empty_like(values, np.float32)
        )
        for index, column in enumerate(transformed):
            out[..., index] = column
        return out

    def _transform_columns(
        self,
        transforms: list[VariableTransform],
        columns: list[np.ndarray],
        group: str,
        real: np.ndarray | None,
    ) -> list[np.ndarray]:
        """Transform one array per variable; ``real`` marks the entries that hold data
        (padded object slots may hold values that a log transform rejects)."""
        if not self.fitted:
            msg = "the preprocessor is not fitted; call fit() or load_state_dict()"
            raise RuntimeError(msg)
        by_name = {t.name: i for i, t in enumerate(transforms)}
        out = []
        for transform, column in zip(transforms, columns, strict=True):
            if transform.uncertainty_of is not None:
                central = by_name[transform.uncertainty_of]
                slope = transforms[central].derivative(columns[central])
                out.append((np.abs(slope) * column).astype(np.float32))
                continue
            values = np.asarray(column, dtype=np.float32)
            if transform.reshapes:
                values = transform.shape(values, group, real)
            values = (values - np.float32(transform.center)) / np.float32(transform.scale)
            out.append(values.astype(np.float32, copy=False))
        return out

    # State -------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Return the fitted transforms as JSON-compatible data."""
        return {
            "version": STATE_VERSION,
            "method": self.config.method,
            "target_method": self.config.target_method,
            "features": [asdict(t) for t in self.features],
            "objects": [asdict(t) for t in self.objects],
            "targets": [asdict(t) for t in self.targets],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore transforms from :meth:`state_dict`; the variable names must match."""
        if state.get("version") != STATE_VERSION:
            msg = (
                f"preprocessing state has version {state.get('version')!r}, expected "
                f"{STATE_VERSION}; refit the preprocessing with this version of the code"
            )
            raise DataError(msg)
        for group in ("features", "objects", "targets"):
            expected = [t.name for t in getattr(self, group)]
            stored = [t["name"] for t in state[group]]
            if stored != expected:
                msg = (
                    f"preprocessing state has {group} {stored}, but the data config declares "
                    f"{expected}; use the data config the checkpoint was trained with"
                )
                raise DataError(msg)
            setattr(self, group, [VariableTransform(**t) for t in state[group]])
        self.fitted = True

    def to_json(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`state_dict` to ``path`` as JSON, atomically."""
        with atomic_output(Path(path)) as temporary:
            temporary.write_text(json.dumps(self.state_dict(), indent=2) + "\n")

    @classmethod
    def from_json(
        cls,
        path: str | os.PathLike[str],
        config: PreprocessingConfig,
        feature_names: Sequence[str],
        object_feature_names: Sequence[str] = (),
        target_names: Sequence[str] = (),
    ) -> Preprocessor:
        preprocessor = cls(config, feature_names, object_feature_names, target_names)
        preprocessor.load_state_dict(json.loads(Path(path).read_text()))
        return preprocessor
