"""Evaluation of trained models: HEP metrics, plots, tracker logging and predictions in ROOT."""

from .figures import PlotStyle
from .report import run_evaluation

__all__ = ["PlotStyle", "run_evaluation"]
