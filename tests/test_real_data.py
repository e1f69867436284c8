"""A rendered repo trains on a real ROOT file when only data config values are overridden.

The file is the CMS 2010 open-data dimuon sample of the shared test data (tree `events`); the
regression target is the dimuon mass `M` and the inputs are the two muons' four-vectors.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from combinations import Combination
from matrix import REAL_DATA_DIR, render_combination, rendered_test_environment
from rendering import snapshot_template

ZMUMU = REAL_DATA_DIR / "uproot-Zmumu.root"


@pytest.mark.skipif(not ZMUMU.is_file(), reason=f"real data file {ZMUMU} is absent")
def test_regression_trains_on_zmumu_by_data_overrides(tmp_path: Path) -> None:
    combination = Combination("regression", False, "mlp", "csv", "cpu")
    template = snapshot_template(tmp_path / "template")
    render_dir = render_combination(combination, tmp_path, template)
    overrides = [
        f"data.sources=[{{name: zmumu, files: {ZMUMU}, tree: events}}]",
        "data.targets=[M]",
        "data.inputs.features=[E1,px1,py1,pz1,E2,px2,py2,pz2]",
        "data.observers=[Run,Event]",
        "~data.preprocessing.uncertainties",
        "trainer.max_epochs=2",
    ]

    result = subprocess.run(
        [sys.executable, "-m", f"{combination.package_name}.train", *overrides],
        cwd=render_dir,
        env=rendered_test_environment(render_dir, threads=1),
        capture_output=True,
        text=True,
        check=False,
    )

    output = result.stdout[-4000:] + result.stderr[-4000:]
    assert result.returncode == 0, output
    metrics_files = list((render_dir / "logs" / "train" / "runs").glob("*/evaluation/metrics.json"))
    assert len(metrics_files) == 1, output
    metrics = json.loads(metrics_files[0].read_text())
    assert "M_resolution_sigma68" in metrics, metrics
