"""Machine-learning pipeline from ROOT files to trained models, metrics and plots.

The Hydra apps are :mod:`.train` and :mod:`.evaluate`; the stages live in :mod:`.data`,
:mod:`.models`, :mod:`.tasks` and :mod:`.evaluation`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    # The distribution name is the package name with dashes; importlib normalises both.
    __version__ = version(__name__)
except PackageNotFoundError:  # a source tree on the path that is not installed
    __version__ = "0.0.0"
