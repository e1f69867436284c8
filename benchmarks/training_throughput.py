"""Benchmark of the training step of a rendered repository: Lightning against plain PyTorch.

Usage:
    python benchmarks/training_throughput.py RENDERED_REPO [--batches N] [--repeats R]
        [--accelerator cpu|gpu] [--output results.json]

RENDERED_REPO is a repository rendered from this template (``copier copy``); its package is
imported from ``RENDERED_REPO/src``. The script writes the toy ROOT files of the rendered task
and reads one list of training batches with the rendered data module. It then trains the
rendered model on exactly those batches, with the optimizer of the rendered task config, in
these ways:

- plain: a hand-written PyTorch loop (zero_grad, forward, event-weighted loss, backward, step,
  and a running sum of the loss, as any training loop keeps);
- lightning: ``Trainer.fit`` of the rendered task with the rendered trainer, callbacks and
  logger configs, as ``train`` runs it;
- lightning, no progress bar: the same without the progress bar callback;
- lightning, step logging: the same with ``task.log_every_step=true``, which logs the loss on
  every ``trainer.log_every_n_steps``-th step (50 in the rendered trainer config);
- lightning, step logging every step: the same with ``trainer.log_every_n_steps=1`` as well,
  the per-step logging that the default configuration avoids;
- lightning, bare: no callbacks, no logger, no progress bar and no checkpointing, the cost of
  Lightning's training loop alone.

Only the steps are timed: from the start of step ``--warmup`` to the start of step
``--warmup + --batches``, so the time includes every per-step hook, the logging and the progress
bar, but not the start of ``fit``, the validation loop or the checkpoints at the end of the epoch.
Each way runs ``--repeats`` times, interleaved, from the same initial weights. Each repeat
starts one mode later in the list than the one before, so no mode always runs right after
another. The report gives median steps per second and the median of the per-repeat ratios to
the plain loop, because this machine is shared and absolute rates drift between runs.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import open_dict

log = logging.getLogger("benchmark")

MODES = (
    "plain",
    "lightning",
    "lightning, no progress bar",
    "lightning, step logging",
    "lightning, step logging every step",
    "lightning, bare",
)


def load_package(repo: Path) -> tuple[str, dict[str, Any]]:
    """Put ``repo``/src on the import path; return the package name and the questionnaire
    answers stored by copier."""
    answers_file = repo / ".copier-answers.yml"
    if not answers_file.is_file():
        msg = f"{repo} has no .copier-answers.yml; pass a repository rendered by copier"
        raise SystemExit(msg)
    answers = yaml.safe_load(answers_file.read_text())
    sys.path.insert(0, str(repo / "src"))
    return answers["package_name"], answers


def compose_train_config(package: str, overrides: list[str]) -> Any:
    configuration = importlib.import_module(f"{package}.configuration")
    with initialize_config_dir(version_base="1.3", config_dir=str(configuration.config_dir())):
        return compose("train", overrides=overrides)


def read_batches(cfg: Any, max_batches: int, device: torch.device) -> list[dict]:
    """Return up to ``max_batches`` training batches of the rendered data module, in memory on
    ``device``."""
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    batches = []
    for batch in datamodule.train_dataloader():
        batches.append({key: value.to(device) for key, value in batch.items()})
        if len(batches) == max_batches:
            break
    if len(batches) < 3:
        msg = f"the toy data gives only {len(batches)} training batches; raise --events"
        raise SystemExit(msg)
    return batches


class InMemoryBatches:
    """The same batch dictionaries on every pass; Lightning would read a plain list as one
    dataloader per element."""

    def __init__(self, batches: list[dict]) -> None:
        self.batches = batches

    def __iter__(self) -> Any:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class StepTimer:
    """Wall-clock and process CPU time at the start of two steps.

    CPU time counts only this process (all its threads), so other load on a shared machine
    changes it far less than the wall-clock time. With one PyTorch thread on a CPU, it is the
    better measure of the work per step.
    """

    def __init__(self, first: int, last: int, device: torch.device) -> None:
        self.first, self.last, self.device = first, last, device
        self.start = self.stop = (float("nan"), float("nan"))

    def mark(self, step: int) -> None:
        if step in (self.first, self.last):
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            now = (time.perf_counter(), time.process_time())
            if step == self.first:
                self.start = now
            else:
                self.stop = now

    def steps_per_second(self, clock: int) -> float:
        """Return the rate by wall-clock time (``clock=0``) or process CPU time (``clock=1``)."""
        return (self.last - self.first) / (self.stop[clock] - self.start[clock])

    def attach(self, task: Any) -> None:
        """Mark steps from ``task.on_train_batch_start``, a hook that Lightning calls on every
        step anyway, so timing adds no hook call (a callback would add six per step)."""

        def on_train_batch_start(batch: Any, batch_idx: int) -> None:
            del batch
            self.mark(batch_idx)

        task.on_train_batch_start = on_train_batch_start


def run_plain(build_task: Callable[[], Any], batches: list[dict], timer: StepTimer) -> None:
    task = build_task()
    model = task.model
    keys = task.input_keys
    optimizer = task.optimizer_factory(model.parameters())
    model.train()
    running_loss = torch.zeros((), device=batches[0]["weight"].device)
    for step, batch in enumerate(batches):
        timer.mark(step)
        optimizer.zero_grad(set_to_none=True)
        outputs = model(**{key: batch[key] for key in keys if key in batch})
        weights = batch["weight"] * batch["balance_weight"]
        loss = (task.event_losses(outputs, batch) * weights).sum() / weights.abs().sum()
        loss.backward()
        optimizer.step()
        running_loss += loss.detach()
    timer.mark(len(batches))


def run_lightning(
    cfg: Any,
    build_task: Callable[[], Any],
    batches: list[dict],
    validation: list[dict],
    timer: StepTimer,
    mode: str,
) -> None:
    package_trackers = importlib.import_module(f"{cfg.task._target_.split('.')[0]}.trackers")
    cfg = copy.deepcopy(cfg)
    task = build_task()
    with open_dict(cfg):
        if mode == "lightning, no progress bar":
            # Without a progress bar callback, Lightning would add its own unless disabled.
            cfg.callbacks.progress_bar = None
            cfg.trainer.enable_progress_bar = False
        if mode in ("lightning, step logging", "lightning, step logging every step"):
            task.log_every_step = True
        if mode == "lightning, step logging every step":
            cfg.trainer.log_every_n_steps = 1
        if mode == "lightning, bare":
            cfg.callbacks = {}
            cfg.logger = {}
            cfg.trainer.enable_progress_bar = False
            cfg.trainer.enable_checkpointing = False
    callbacks = package_trackers.instantiate_group(cfg.callbacks)
    loggers = package_trackers.instantiate_group(cfg.get("logger"))
    timer.attach(task)
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    try:
        # One extra batch: the timer stops at the start of the step after the last timed one.
        trainer.fit(
            task,
            train_dataloaders=InMemoryBatches([*batches, batches[0]]),
            val_dataloaders=InMemoryBatches(validation),
        )
    finally:
        package_trackers.finalize_loggers(loggers, failed=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repo", type=Path, help="folder of a rendered repository")
    parser.add_argument("--batches", type=int, default=300, help="timed steps (default: 300)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed first steps (default: 10)")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each mode (default: 5)")
    parser.add_argument("--events", type=int, default=20_000, help="toy events per file")
    parser.add_argument(
        "--batch-size", type=int, help="override data.batch_size (default: the data config's)"
    )
    parser.add_argument("--accelerator", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--workdir", type=Path, help="folder for toy data and logs (default: temp)")
    parser.add_argument("--output", type=Path, help="also write the results as JSON here")
    parser.add_argument(
        "--threads",
        type=int,
        help="PyTorch CPU threads (default: PyTorch's choice); one thread keeps a shared "
        "machine's other load from stalling the thread pool",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(noisy).setLevel(logging.ERROR)

    repo = args.repo.resolve()
    package, answers = load_package(repo)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="training-throughput-"))
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    toy = importlib.import_module(f"{package}.data.toy")
    getattr(toy, f"write_{answers['task']}")(workdir / "data" / "toy", args.events, 1)

    n_steps = args.warmup + args.batches
    overrides = [
        f"paths.data_dir={workdir / 'data'}",
        f"paths.log_dir={workdir / 'logs'}",
        f"trainer.accelerator={args.accelerator}",
        "trainer.max_epochs=1",
        f"++trainer.limit_train_batches={n_steps + 1}",
        "++trainer.limit_val_batches=2",
        "++trainer.num_sanity_val_steps=0",
        "++trainer.enable_model_summary=false",
    ]
    if args.batch_size:
        overrides.append(f"data.batch_size={args.batch_size}")
    cfg = compose_train_config(package, overrides)
    device = torch.device("cuda" if args.accelerator == "gpu" else "cpu")
    # Two batches for validation; the timed steps cycle through the others.
    loaded = read_batches(cfg, n_steps + 2, device)
    validation, loaded = loaded[-2:], loaded[:-2]
    batches = [loaded[step % len(loaded)] for step in range(n_steps)]

    torch.manual_seed(0)
    initial = instantiate(cfg.task, model=instantiate(cfg.model))

    def build_task() -> Any:
        task = copy.deepcopy(initial)
        return task.to(device)

    timers: dict[str, list[StepTimer]] = {mode: [] for mode in MODES}
    for repeat in range(args.repeats):
        shift = repeat % len(MODES)
        for mode in MODES[shift:] + MODES[:shift]:
            index = MODES.index(mode)
            timer = StepTimer(args.warmup, n_steps, device)
            if mode == "plain":
                run_plain(build_task, batches, timer)
            else:
                run_cfg = copy.deepcopy(cfg)
                run_cfg.paths.output_dir = str(workdir / "logs" / f"run-{repeat}-{index}")
                run_lightning(run_cfg, build_task, batches, validation, timer, mode)
            timers[mode].append(timer)
            log.info(
                "repeat %d, %s: %.1f steps/s (wall clock), %.1f steps/s (CPU time)",
                repeat,
                mode,
                timer.steps_per_second(0),
                timer.steps_per_second(1),
            )

    batch_size = int(batches[0]["weight"].shape[0])
    results: dict[str, Any] = {
        "repo": str(repo),
        "task": answers["task"],
        "model_family": answers["model_family"],
        "tracker": answers["tracker"],
        "accelerator": args.accelerator,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch_threads": torch.get_num_threads(),
        "batch_size": batch_size,
        "timed_steps": args.batches,
        "repeats": args.repeats,
        "parameters": sum(p.numel() for p in initial.parameters()),
        "modes": {},
    }
    log.info(
        "\n%s / %s / %s, %s, %d PyTorch threads, batch size %d, %d parameters, %d timed steps, "
        "%d repeats (medians)",
        answers["task"],
        answers["model_family"],
        answers["tracker"],
        args.accelerator,
        results["torch_threads"],
        batch_size,
        results["parameters"],
        args.batches,
        args.repeats,
    )
    log.info(
        "%-36s %-5s %9s %10s %8s %6s", "mode", "clock", "steps/s", "events/s", "us/step", "ratio"
    )
    for mode in MODES:
        results["modes"][mode] = {}
        for clock, clock_name in enumerate(("wall", "cpu")):
            rates = [timer.steps_per_second(clock) for timer in timers[mode]]
            plain = [timer.steps_per_second(clock) for timer in timers["plain"]]
            ratio = statistics.median(a / b for a, b in zip(rates, plain, strict=True))
            rate = statistics.median(rates)
            results["modes"][mode][clock_name] = {
                "steps_per_second": rates,
                "median_steps_per_second": rate,
                "median_ratio_to_plain": ratio,
            }
            log.info(
                "%-36s %-5s %9.1f %10.0f %8.0f %6.3f",
                mode,
                clock_name,
                rate,
                rate * batch_size,
                1e6 / rate,
                ratio,
            )
    if args.output:
        args.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
