"""HEP plot style, experiment label and atomic PNG and PDF output for the evaluation plots.

Figures are built with ``matplotlib.figure.Figure`` and an Agg canvas rather than pyplot, so
they need no GUI backend and are not kept alive by pyplot's figure registry.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import matplotlib.style
import mplhep
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.legend import Legend

from ..atomic_write import atomic_output

EXPERIMENT_STYLES: dict[str, dict[str, Any]] = {
    "CMS": mplhep.style.CMS,
    "ATLAS": mplhep.style.ATLAS,
    "LHCb": mplhep.style.LHCb2,
    "ALICE": mplhep.style.ALICE,
    "DUNE": mplhep.style.DUNE,
}

FIGURE_FORMATS = ("png", "pdf")
# The legend may take at most this share of the axes height; the data get the rest.
MAX_LEGEND_SHARE = 0.6


@dataclass(frozen=True)
class PlotStyle:
    """Experiment style and label of the evaluation plots, and the units of the variables.

    ``text`` follows the experiment name ("CMS Simulation Private Work"); plots that are not
    approved by the collaboration must keep a label such as "Private Work" or "Internal".
    ``energy`` is the centre-of-mass energy in TeV (or a string with its unit) and
    ``luminosity`` the integrated luminosity in fb^-1; either can be None to leave it out.
    ``units`` maps a target or observer name to its unit, e.g. {"M": "GeV"}, for axis labels.
    """

    experiment: str = "CMS"
    text: str = "Private Work"
    simulation: bool = True
    energy: float | str | None = 13
    luminosity: float | None = None
    units: Mapping[str, str] = field(default_factory=dict)
    dpi: int = 150

    def __post_init__(self) -> None:
        if self.experiment not in EXPERIMENT_STYLES:
            message = (
                f"unknown experiment style {self.experiment!r}: choose one of "
                f"{', '.join(EXPERIMENT_STYLES)}"
            )
            raise ValueError(message)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PlotStyle:
        """Build the style from the ``plot_style`` block of the run configuration."""
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            message = (
                f"plot_style has unknown keys {unknown}: the valid keys are {sorted(known)} "
                "(see configs/plot_style/default.yaml)"
            )
            raise ValueError(message)
        values = dict(config)
        units = values.get("units") or {}
        values["units"] = {str(name): str(unit) for name, unit in units.items()}
        return cls(**values)

    def axis_label(self, name: str, description: str | None = None) -> str:
        """Return an axis label "description [unit]" for the variable ``name``."""
        label = description or name
        unit = self.units.get(name)
        return f"{label} [{unit}]" if unit else label


@contextmanager
def hep_style(style: PlotStyle) -> Iterator[None]:
    """Apply the experiment's matplotlib style inside the block only."""
    with matplotlib.style.context(EXPERIMENT_STYLES[style.experiment]):
        yield


def add_experiment_label(axes: Axes, style: PlotStyle) -> None:
    """Write the experiment label above ``axes``: name and text left, energy, luminosity right."""
    mplhep.label.exp_label(
        exp=style.experiment,
        text=style.text,
        data=not style.simulation,
        com=style.energy,
        lumi=style.luminosity,
        loc=0,
        ax=axes,
    )


def new_figure(**kwargs: Any) -> Figure:
    """Create a figure drawn by Agg, whatever matplotlib backend the session has selected."""
    figure = Figure(**kwargs)
    FigureCanvasAgg(figure)
    return figure


def place_legend_above_data(axes: Axes, legend: Legend) -> None:
    """Raise the top of the y axis until the data end below ``legend``, on linear or log axes.

    The legend must sit at the top of the axes (loc "upper ...").
    """
    legend_height = legend.get_window_extent().height
    axes_height = axes.get_window_extent().height
    share = min(legend_height / axes_height + 0.04, MAX_LEGEND_SHARE)
    bottom, top = axes.get_ylim()
    if axes.get_yscale() == "log":
        low, high = np.log10(bottom), np.log10(top)
        axes.set_ylim(bottom, 10 ** (low + (high - low) / (1.0 - share)))
    else:
        axes.set_ylim(bottom, bottom + (top - bottom) / (1.0 - share))


def save_figure(figure: Figure, directory: Path, name: str, style: PlotStyle) -> dict[str, Path]:
    """Write ``figure`` as ``directory/name.png`` and ``.pdf``, each atomically.

    Returns the written paths keyed by format.
    """
    paths = {}
    with hep_style(style):
        for file_format in FIGURE_FORMATS:
            path = Path(directory) / f"{name}.{file_format}"
            with atomic_output(path) as temporary:
                figure.savefig(temporary, format=file_format, dpi=style.dpi, bbox_inches="tight")
            paths[file_format] = path
    return paths
