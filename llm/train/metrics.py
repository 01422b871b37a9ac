"""Metric sinks: WORKDIR/metrics.jsonl and TensorBoard event files, written by process 0."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Mapping

import jax
from tensorboardX import SummaryWriter


class MetricWriter:
    """Appends scalars to metrics.jsonl (one object per line) and TensorBoard."""

    def __init__(self, workdir: str | pathlib.Path, *, resume_step: int = 0):
        self.enabled = jax.process_index() == 0
        self.path = pathlib.Path(workdir) / "metrics.jsonl"
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _truncate_after(self.path, resume_step)
        self._tb = SummaryWriter(str(pathlib.Path(workdir) / "tensorboard"))

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        """Records scalars for `step`."""
        if not self.enabled:
            return
        row = {"step": int(step), **{k: float(v) for k, v in scalars.items()}}
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        for key, value in scalars.items():
            self._tb.add_scalar(key, float(value), int(step))

    def flush(self) -> None:
        """Makes everything written so far visible on disk."""
        if self.enabled:
            self._tb.flush()

    def close(self) -> None:
        """Flushes and closes the TensorBoard writer."""
        if self.enabled:
            self._tb.close()


def _truncate_after(path: pathlib.Path, step: int) -> None:
    """Drops rows past `step`: a resumed run redoes those steps and writes them again."""
    if not path.exists():
        return
    rows = [line for line in path.read_text().splitlines() if line.strip()]
    kept = [line for line in rows if json.loads(line)["step"] <= step]
    if len(kept) != len(rows):
        path.write_text("".join(line + "\n" for line in kept))


def read_metrics(workdir: str | pathlib.Path) -> list[dict]:
    """Rows of WORKDIR/metrics.jsonl."""
    path = pathlib.Path(workdir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
