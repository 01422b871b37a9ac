"""Appending evaluation scores to a finished run's metrics.jsonl, TensorBoard and W&B."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Mapping

import jax
from absl import logging


def append_metrics(workdir: str | pathlib.Path, step: int, scalars: Mapping[str, float]) -> None:
    """Adds one row {'step': step, **scalars} to WORKDIR/metrics.jsonl and the same to TensorBoard.

    Unlike llm.train.metrics.MetricWriter it never truncates: a standalone
    eval must not drop the rows of the training run it scores. A run that logged to W&B
    (train.wandb_project in its config.json) gets the scores too, in the same W&B run.
    """
    if jax.process_index() != 0:
        return
    from tensorboardX import SummaryWriter

    workdir = pathlib.Path(workdir)
    row = {"step": int(step), **{k: float(v) for k, v in scalars.items()}}
    with (workdir / "metrics.jsonl").open("a") as f:
        f.write(json.dumps(row) + "\n")
    writer = SummaryWriter(str(workdir / "tensorboard"))
    try:
        for key, value in scalars.items():
            writer.add_scalar(key, float(value), int(step))
    finally:
        writer.close()
    _append_to_wandb(workdir, step, row)


def _append_to_wandb(workdir: pathlib.Path, step: int, row: Mapping[str, float]) -> None:
    """Logs the row to the run's W&B run (resumed by its stored id), if it has one."""
    from llm.train.config import wandb_enabled
    from llm.train.metrics import init_wandb
    from llm.train.restore import load_run_config

    if not (workdir / "config.json").is_file():
        return
    config = load_run_config(workdir)
    if not wandb_enabled(config.train):
        return
    try:
        import wandb
    except ImportError:
        # The scores are in metrics.jsonl already: a missing optional sink is not fatal here.
        logging.warning(
            "%s logs to W&B (train.wandb_project=%r) but wandb is not installed "
            "(pip install -e '.[wandb]'): the scores are not in W&B.",
            workdir,
            config.train.wandb_project,
        )
        return
    run = init_wandb(wandb, workdir, config)
    try:
        scalars = {k: v for k, v in row.items() if k != "step"}
        # W&B keeps a history row only past the run's last step (a checkpoint's step
        # usually is not); the summary gets the scores either way.
        run.log(scalars, step=int(step))
        run.summary.update(scalars)
    finally:
        run.finish()
