"""Appending evaluation scores to a finished run's metrics.jsonl and TensorBoard events."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Mapping

import jax


def append_metrics(workdir: str | pathlib.Path, step: int, scalars: Mapping[str, float]) -> None:
    """Adds one row {'step': step, **scalars} to WORKDIR/metrics.jsonl and the same to TensorBoard.

    Unlike llm.train.metrics.MetricWriter it never truncates: a standalone
    eval must not drop the rows of the training run it scores.
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
