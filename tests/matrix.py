"""Render questionnaire combinations and run each rendered repo's own test suite.

Used by the `matrix` nox session (every valid combination) and by tests/test_combinations.py (the
covering set). Each combination costs one Python process that imports Lightning: the rendered
repo's pytest, which generates toy data, trains a few batches and evaluates. One combination per
(task, model family) runs the whole rendered suite; the others run the tests that depend on the
tracker and accelerator answers (see ANSWER_DEPENDENT_TESTS in combinations.py).

    python tests/matrix.py --workdir .matrix [--set full|covering] [--shard I/N] [--jobs 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from combinations import (
    Combination,
    covering_set,
    full_matrix,
    pytest_selection,
    whole_suite_combinations,
)
from rendering import render, snapshot_template

REAL_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "root"


@dataclass
class Outcome:
    """What happened to one combination: the failed step (or None) and its output."""

    combination: Combination
    failed_step: str | None
    output: str
    seconds: float


def rendered_test_environment(render_dir: Path, threads: int) -> dict[str, str]:
    """Return the environment in which a rendered repo's tests run offline and without a GPU."""
    env = dict(os.environ)
    env.update(
        {
            "PYTHONPATH": str(render_dir / "src"),
            "WANDB_MODE": "offline",
            "WANDB_SILENT": "true",
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    if REAL_DATA_DIR.is_dir() and "HEP_DATA_DIR" not in env:
        env["HEP_DATA_DIR"] = str(REAL_DATA_DIR)
    return env


def render_combination(combination: Combination, workdir: Path, template: Path) -> Path:
    """Render ``combination`` from ``template`` into a fresh folder under ``workdir``."""
    render_dir = workdir / combination.name
    shutil.rmtree(render_dir, ignore_errors=True)
    return render(render_dir, combination.answers(), template)


def check_rendered(
    combination: Combination,
    render_dir: Path,
    threads: int = 1,
    pytest_args: tuple[str, ...] = (),
) -> Outcome:
    """Run the tests of the rendered repo in ``render_dir``.

    ``pytest_args`` select tests of the rendered repo (default: all). Safe to call from several
    threads at once, unlike rendering and installing.
    """
    start = time.perf_counter()
    env = rendered_test_environment(render_dir, threads)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args]
    result = subprocess.run(
        command, cwd=render_dir, env=env, capture_output=True, text=True, check=False
    )
    output = f"$ {' '.join(command)}\n{result.stdout}{result.stderr}"
    failed_step = None if result.returncode == 0 else "tests"
    return Outcome(combination, failed_step, output, time.perf_counter() - start)


def install_all(combinations: list[Combination], render_dirs: list[Path]) -> list[Outcome]:
    """Install every rendered repo in editable mode; return the outcomes of those that failed.

    One pip process installs them all, before any test runs: tests that start while pip
    writes into the same environment can read half-written package metadata (W&B lists every
    installed package when a run starts). When that pip process fails, each repo is installed
    on its own to find the ones that fail.
    """
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    editable = [argument for path in render_dirs for argument in ("-e", str(path))]
    if subprocess.run([*pip, *editable], capture_output=True, check=False).returncode == 0:
        return []
    failures = []
    for combination, render_dir in zip(combinations, render_dirs, strict=True):
        start = time.perf_counter()
        command = [*pip, "-e", str(render_dir)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            output = f"$ {' '.join(command)}\n{result.stdout}{result.stderr}"
            failures.append(Outcome(combination, "install", output, time.perf_counter() - start))
    return failures


def select_shard(combinations: list[Combination], shard: str) -> list[Combination]:
    """Return shard ``I/N`` (1-based) of ``combinations``, interleaved so shards cost alike."""
    try:
        index, count = (int(part) for part in shard.split("/"))
    except ValueError:
        raise SystemExit(f"--shard {shard!r} is invalid: expected I/N, e.g. 2/4") from None
    if not 1 <= index <= count:
        raise SystemExit(f"--shard {shard!r} is invalid: I must be between 1 and N")
    return combinations[index - 1 :: count]


def print_outcome(outcome: Outcome) -> None:
    """Print one line: the combination, ok or the failed step, and the seconds it took."""
    status = "ok" if outcome.failed_step is None else f"FAILED at {outcome.failed_step}"
    print(f"{outcome.combination.name:<50} {status:<20} {outcome.seconds:6.1f} s", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path(".matrix"))
    parser.add_argument("--set", choices=("full", "covering"), default="full")
    parser.add_argument("--shard", default="1/1", help="run shard I of N, e.g. 2/4")
    parser.add_argument("--jobs", type=int, default=2, help="combinations checked at once")
    parser.add_argument("--no-install", action="store_true", help="test from src/, skip pip")
    arguments = parser.parse_args()

    combinations = full_matrix() if arguments.set == "full" else covering_set()
    combinations = select_shard(combinations, arguments.shard)
    arguments.workdir.mkdir(parents=True, exist_ok=True)
    print(f"Checking {len(combinations)} combinations with {arguments.jobs} at once", flush=True)

    start = time.perf_counter()
    template = arguments.workdir / "template-snapshot"
    shutil.rmtree(template, ignore_errors=True)
    snapshot_template(template)
    render_dirs = [render_combination(c, arguments.workdir, template) for c in combinations]
    print(f"Rendered in {time.perf_counter() - start:.1f} s", flush=True)

    failures = []
    if not arguments.no_install:
        start_install = time.perf_counter()
        failures = install_all(combinations, render_dirs)
        print(f"Installed in {time.perf_counter() - start_install:.1f} s", flush=True)
    failed_to_install = {outcome.combination for outcome in failures}
    to_test = [
        (combination, render_dir)
        for combination, render_dir in zip(combinations, render_dirs, strict=True)
        if combination not in failed_to_install
    ]

    for outcome in failures:
        print_outcome(outcome)
    whole_suite = whole_suite_combinations(combinations)
    with ThreadPoolExecutor(max_workers=arguments.jobs) as pool:
        outcomes = pool.map(
            lambda pair: check_rendered(*pair, pytest_args=pytest_selection(pair[0], whole_suite)),
            to_test,
        )
        for outcome in outcomes:
            print_outcome(outcome)
            if outcome.failed_step is not None:
                failures.append(outcome)

    for outcome in failures:
        print(f"\n===== {outcome.combination.name} =====\n{outcome.output[-6000:]}")
    elapsed = time.perf_counter() - start
    passed = len(combinations) - len(failures)
    print(f"\nmatrix: {passed} passed, {len(failures)} failed in {elapsed:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
