"""Benchmark of the data layer of a rendered repository, as ratios measured in one run.

Usage:
    python benchmarks/data_loading.py RENDERED_REPO [--events N] [--workdir DIR]

RENDERED_REPO is a repository rendered from this template (``copier copy``); its package is
imported from ``RENDERED_REPO/src``. The script writes one toy ROOT file (the classification
toy: event-level met, n_jets, ht and jagged jet_pt, jet_eta, jet_phi, jet_n_constituents) and
reads it in several ways, reporting events per second and ratios:

- raw: ``uproot.iterate`` of the branches the data config reads, without padding (the limit set
  by decompression and deserialisation in one thread);
- raw, decompression pool: the same with the pipeline's default pool of decompression threads
  (``loading.decompression_threads``);
- naive padding: raw plus ``ak.pad_none`` + ``ak.fill_none`` + ``ak.to_numpy`` per branch;
- padding only: raw plus the package's ``pad_objects``;
- pipeline: the package's streaming data module from file to preprocessed, padded batches with
  masks (shuffled training loader, and the ordered predict loader), with its defaults (a
  read-ahead thread and a pool of decompression threads), without the pool, and on one core
  (neither);
- weaver-core: ``weaver.utils.dataset.SimpleIterDataset`` with the same inputs, if installed;
- workers: the streaming training loader with 1 and 2 DataLoader workers on one file; the CPU
  time of the two-worker passes (workers included) gives an estimate of the scaling on two
  idle cores;
- memory: resident memory while streaming the file for three epochs with chunks of a twentieth
  of the file, in a fresh process.

Rates are medians over ``--repeats`` interleaved repetitions, so that machine noise hits all
readers alike.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import torch
import uproot
import yaml

log = logging.getLogger("benchmark")

FEATURES = ["met", "n_jets", "ht"]
OBJECTS = ["jet_pt", "jet_eta", "jet_phi", "jet_n_constituents"]
MAX_LENGTH = 8
CHUNK_SIZE = 100_000
BATCH_SIZE = 256


def load_package(repo: Path) -> str:
    """Put ``repo/src`` on the path and return the rendered package name."""
    answers = yaml.safe_load((repo / ".copier-answers.yml").read_text())
    sys.path.insert(0, str(repo / "src"))
    return str(answers["package_name"])


def data_config(path: Path, **loading: Any) -> dict[str, Any]:
    """Return the keyword arguments of RootDataModule for the benchmark file."""
    return {
        "sources": [{"name": "toy", "files": str(path), "tree": "events"}],
        "classes": ["few_jets", "many_jets"],
        "label": "n_jets > 3",
        "weight": "weight",
        "inputs": {
            "features": FEATURES,
            "objects": {"branches": OBJECTS, "max_length": MAX_LENGTH, "sort_by": "jet_pt"},
        },
        "split": {"val_fraction": 0.0, "test_fraction": 0.0},
        "loading": {"mode": "stream", "chunk_size": CHUNK_SIZE, **loading},
        "batch_size": BATCH_SIZE,
    }


def write_file(package: str, path: Path, n_events: int) -> None:
    toy = importlib.import_module(f"{package}.data.toy")
    if path.exists() and uproot.open(path)["events"].num_entries == n_events:
        return
    toy.write_tree(path, toy.generate_classification("signal", n_events, seed=11))


def time_rate(function: Callable[[], int]) -> tuple[float, float]:
    """Return events per second of wall-clock time and per second of CPU time (this process
    and its DataLoader workers) of one call of ``function``, which returns its event count.
    The CPU rate depends much less than the wall-clock rate on other load on the machine."""
    wall = time.perf_counter()
    cpu = cpu_seconds()
    n_events = function()
    return n_events / (time.perf_counter() - wall), n_events / (cpu_seconds() - cpu)


def cpu_seconds() -> float:
    """Return the CPU time of this process, its finished children and its running children
    (persistent DataLoader workers), in seconds."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    finished = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + finished.ru_utime + finished.ru_stime
    ticks = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name (field 2) may contain spaces, so split after its closing ")".
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended while being read
        parent, user, system = int(fields[1]), int(fields[11]), int(fields[12])
        if parent == os.getpid():
            total += (user + system) / ticks
    return total


def read_raw(path: Path, branches: list[str], threads: int = 0) -> int:
    count = 0
    executor = ThreadPoolExecutor(threads) if threads else None
    chunks = uproot.iterate(
        f"{path}:events", branches, step_size=CHUNK_SIZE, decompression_executor=executor
    )
    for arrays in chunks:
        count += len(arrays)
    if executor is not None:
        executor.shutdown()
    return count


def read_naive(path: Path, branches: list[str]) -> int:
    count = 0
    for arrays in uproot.iterate(f"{path}:events", branches, step_size=CHUNK_SIZE):
        features = np.stack([ak.to_numpy(arrays[name]) for name in FEATURES], axis=1)
        padded = [
            ak.to_numpy(ak.fill_none(ak.pad_none(arrays[name], MAX_LENGTH, clip=True), 0.0))
            for name in OBJECTS
        ]
        objects = np.stack(padded, axis=-1).astype(np.float32)
        mask = np.arange(MAX_LENGTH) < ak.to_numpy(ak.num(arrays["jet_pt"]))[:, None]
        count += len(features) + 0 * (objects.size + mask.size)
    return count


def read_padding(package: str, path: Path, branches: list[str]) -> int:
    padding = importlib.import_module(f"{package}.data.padding")
    count = 0
    for arrays in uproot.iterate(f"{path}:events", branches, step_size=CHUNK_SIZE):
        features = np.stack([ak.to_numpy(arrays[name]) for name in FEATURES], axis=1)
        objects, _ = padding.pad_objects([arrays[name] for name in OBJECTS], MAX_LENGTH)
        count += len(features) + 0 * objects.size
    return count


def make_module(package: str, path: Path, **loading: Any) -> Any:
    datamodule = importlib.import_module(f"{package}.data.datamodule")
    module = datamodule.RootDataModule(**data_config(path, **loading))
    module.setup()
    return module


def count_batches(loader: Any) -> int:
    return sum(len(batch["index"]) for batch in loader)


def write_weaver_config(path: Path, module: Any) -> None:
    """Write a weaver-core data config with the same inputs and the fitted standardisation."""
    transforms = {t.name: t for t in [*module.preprocessor.features, *module.preprocessor.objects]}

    def entry(name: str) -> list[Any]:
        t = transforms[name]
        # weaver applies (x - center) * scale, clipped to [min, max]; it has no log transform.
        return [name, t.center, 1.0 / t.scale, -1e9, 1e9]

    config = {
        "treename": "events",
        "selection": None,
        "new_variables": {
            "jet_mask": "ak.ones_like(jet_pt)",
            "many_jets": "n_jets > 3",
            "few_jets": "n_jets <= 3",
        },
        "preprocess": {"method": "manual", "data_fraction": 0.1},
        "inputs": {
            "features": {"length": None, "vars": [entry(name) for name in FEATURES]},
            "jets": {"length": MAX_LENGTH, "vars": [entry(name) for name in OBJECTS]},
            "jets_mask": {"length": MAX_LENGTH, "vars": [["jet_mask", None]]},
        },
        "labels": {"type": "simple", "value": ["few_jets", "many_jets"]},
        "observers": [],
        "weights": None,
    }
    path.write_text(yaml.safe_dump(config))


def read_weaver(path: Path, config_path: Path) -> int:
    # weaver-core is optional: the benchmark runs without it.
    from weaver.utils.dataset import SimpleIterDataset  # noqa: PLC0415

    # Options of weaver's train.py defaults: fetch 1 % of every file per step, asynchronously.
    dataset = SimpleIterDataset(
        {"toy": [str(path)]},
        str(config_path),
        for_training=True,
        fetch_by_files=False,
        fetch_step=0.01,
    )
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH_SIZE, num_workers=0)
    return sum(len(y["_label_"]) for _, y, _ in loader)


def memory_probe(package: str, path: Path, chunk_size: int, epochs: int = 3) -> dict[str, Any]:
    """Stream the file ``epochs`` times and return the resident memory sampled along the way."""
    module = make_module(package, path, chunk_size=chunk_size, shuffle_buffer=chunk_size)
    loader = module.train_dataloader()
    samples = []
    for _ in range(epochs):
        epoch_samples = []
        for index, _batch in enumerate(loader):
            if index % 100 == 0:
                epoch_samples.append(resident_mib())
        epoch_samples.append(resident_mib())
        samples.append(epoch_samples)
    return {"chunk_size": chunk_size, "rss_mib_per_epoch": samples}


def resident_mib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repo", type=Path, help="folder of a rendered repository")
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the file")
    parser.add_argument("--repeats", type=int, default=3, help="repetitions per reader")
    parser.add_argument(
        "--workdir", type=Path, default=Path("/tmp/data-loading-benchmark"), help="scratch folder"
    )
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    parser.add_argument(
        "--workers-only",
        action="store_true",
        help="time only the raw read, the one-thread loader and the worker loaders",
    )
    parser.add_argument("--memory-probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    package = load_package(args.repo.resolve())
    args.workdir.mkdir(parents=True, exist_ok=True)
    path = args.workdir / f"toy_{args.events}.root"
    write_file(package, path, args.events)
    if args.memory_probe:
        json.dump(memory_probe(package, path, chunk_size=args.events // 20), sys.stdout)
        return

    module = make_module(package, path)
    branches = sorted(module._builder.branches(module._files[0]))
    ordered = make_module(package, path)
    no_pool = make_module(package, path, decompression_threads=0)
    one_thread = make_module(package, path, read_ahead=False, decompression_threads=0)
    pool_threads = module.config.loading.decompression_threads
    weaver_config = args.workdir / "weaver_data.yaml"
    write_weaver_config(weaver_config, module)
    try:
        importlib.import_module("weaver.utils.dataset")
        has_weaver = True
    except ImportError:
        has_weaver = False

    readers: dict[str, Callable[[], int]] = {
        "raw uproot.iterate": lambda: read_raw(path, branches),
        "raw uproot.iterate, decompression pool": lambda: read_raw(path, branches, pool_threads),
        "naive padding": lambda: read_naive(path, branches),
        "pad_objects": lambda: read_padding(package, path, branches),
        "pipeline, training loader": lambda: count_batches(module.train_dataloader()),
        "pipeline, training loader, no decompression pool": lambda: count_batches(
            no_pool.train_dataloader()
        ),
        "pipeline, training loader, one thread": lambda: count_batches(
            one_thread.train_dataloader()
        ),
        "pipeline, predict loader": lambda: count_batches(ordered.predict_dataloader("train")),
    }
    if has_weaver:
        readers["weaver-core SimpleIterDataset"] = lambda: read_weaver(path, weaver_config)
    # One loader per worker count, reused by every repeat as training reuses it across epochs
    # (its workers persist), so the median leaves out the start of the worker processes.
    for workers in (1, 2):
        module.num_workers = workers
        loader = module.train_dataloader()
        readers[f"pipeline, training loader, {workers} workers"] = partial(count_batches, loader)
    module.num_workers = 0
    if args.workers_only:
        baselines = ("raw uproot.iterate", "pipeline, training loader, one thread")
        readers = {
            name: reader
            for name, reader in readers.items()
            if name in baselines or "workers" in name
        }
    rates: dict[str, list[float]] = {name: [] for name in readers}
    cpu_rates: dict[str, list[float]] = {name: [] for name in readers}
    for repeat in range(args.repeats):
        for name, reader in readers.items():
            wall_rate, cpu_rate = time_rate(reader)
            rates[name].append(wall_rate)
            cpu_rates[name].append(cpu_rate)
            log.info("repeat %d: %s %.0f events/s", repeat, name, wall_rate)
    median = {name: statistics.median(values) for name, values in rates.items()}
    cpu_median = {name: statistics.median(values) for name, values in cpu_rates.items()}

    memory = None if args.workers_only else memory_probe_subprocess(args)
    results = {
        "events": args.events,
        "file_mib": path.stat().st_size / 2**20,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "decompression_threads": pool_threads,
        "events_per_second": median,
        "events_per_cpu_second": cpu_median,
        "all_rates": rates,
        "ratios": ratios(median, cpu_median, rates),
        "memory": memory,
    }
    if args.output:
        args.output.write_text(json.dumps(results, indent=2))
    print_report(results)


def memory_probe_subprocess(args: argparse.Namespace) -> dict[str, Any]:
    """Run the memory probe in a fresh process, so that earlier readers leave no memory."""
    probe = subprocess.run(
        [
            sys.executable,
            __file__,
            str(args.repo),
            "--events",
            str(args.events),
            "--workdir",
            str(args.workdir),
            "--memory-probe",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(probe.stdout))


# (figure, numerator, denominator) of the rates, for the readers that ran.
RATIOS = (
    ("naive padding / raw", "naive padding", "raw uproot.iterate"),
    ("pad_objects / raw", "pad_objects", "raw uproot.iterate"),
    ("pipeline training / raw", "pipeline, training loader", "raw uproot.iterate"),
    (
        "pipeline training / raw with the decompression pool",
        "pipeline, training loader",
        "raw uproot.iterate, decompression pool",
    ),
    (
        "pipeline training without the pool / raw",
        "pipeline, training loader, no decompression pool",
        "raw uproot.iterate",
    ),
    (
        "pipeline training on one thread / raw",
        "pipeline, training loader, one thread",
        "raw uproot.iterate",
    ),
    ("pipeline predict / raw", "pipeline, predict loader", "raw uproot.iterate"),
    (
        "2 workers / 1 process on one thread",
        "pipeline, training loader, 2 workers",
        "pipeline, training loader, one thread",
    ),
    (
        "2 workers / 1 process with its defaults",
        "pipeline, training loader, 2 workers",
        "pipeline, training loader",
    ),
    (
        "2 workers / 1 worker",
        "pipeline, training loader, 2 workers",
        "pipeline, training loader, 1 workers",
    ),
    ("pipeline / weaver-core", "pipeline, training loader", "weaver-core SimpleIterDataset"),
)


def ratios(
    median: dict[str, float], cpu_median: dict[str, float], rates: dict[str, list[float]]
) -> dict[str, float]:
    """Return the figures of the readers that ran: ratios of median rates, the median of the
    per-repeat ratios of the worker figures, and CPU-time figures."""
    figures = {}
    for figure, numerator, denominator in RATIOS:
        if numerator in median and denominator in median:
            figures[figure] = median[numerator] / median[denominator]
            if "workers" in figure:
                pairs = zip(rates[numerator], rates[denominator], strict=True)
                per_repeat = statistics.median(a / b for a, b in pairs)
                figures[f"{figure}, median of the per-repeat ratios"] = per_repeat
    one_thread = "pipeline, training loader, one thread"
    figures["events per CPU-second: pipeline on one thread / raw"] = (
        cpu_median[one_thread] / cpu_median["raw uproot.iterate"]
    )
    # An estimate, not a measurement: two workers on two idle cores run at most at
    # 2 / (CPU seconds per event of workers and main process together).
    figures["estimated 2 workers on 2 idle cores / 1 process on one thread"] = (
        2 * cpu_median["pipeline, training loader, 2 workers"] / cpu_median[one_thread]
    )
    return figures


def print_report(results: dict[str, Any]) -> None:
    print(f"file: {results['events']} events, {results['file_mib']:.1f} MiB")  # noqa: T201
    print(f"load average: {results['load_average']}")  # noqa: T201
    for name, rate in results["events_per_second"].items():
        cpu_rate = results["events_per_cpu_second"][name]
        line = f"{name:50s} {rate / 1e3:8.0f} k events/s {cpu_rate / 1e3:8.0f} k events/CPU-s"
        print(line)  # noqa: T201
    for name, ratio in results["ratios"].items():
        print(f"{name:60s} {ratio:6.2f}")  # noqa: T201
    if results["memory"] is None:
        return
    for epoch, rss in enumerate(results["memory"]["rss_mib_per_epoch"]):
        summary = f"min {min(rss):.0f}, max {max(rss):.0f}, end {rss[-1]:.0f}"
        print(f"resident memory in epoch {epoch}, MiB: {summary}")  # noqa: T201


if __name__ == "__main__":
    main()
