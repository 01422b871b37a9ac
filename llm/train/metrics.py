"""Metric sinks: WORKDIR/metrics.jsonl and TensorBoard event files, written by process 0."""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Mapping

import jax
from absl import logging
from tensorboardX import SummaryWriter

from llm.errors import InputFileError
from llm.train import storage


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
        try:
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")
        except OSError as e:
            if storage.is_disk_full(e):
                hint = "the run resumes from its newest checkpoint."
                what = f"Appending to {self.path}"
                raise storage.disk_full_error(self.path.parent, what, hint) from e
            raise
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


def _rows(path: pathlib.Path) -> tuple[list[dict], bool]:
    """(rows of a metrics.jsonl, whether a torn last line was dropped).

    A run killed while appending leaves a partial last line: it is dropped with a
    warning (the resumed run writes that step again). A bad line anywhere else is not
    what a kill leaves, so it is an error naming the file and the line.
    """
    lines = path.read_text().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    rows, torn = [], False
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict) and "step" in row:
            rows.append(row)
        elif number == len(lines):
            logging.warning(
                "%s line %d is torn (the run was killed while writing it): dropped.", path, number
            )
            torn = True
        else:
            raise InputFileError(
                f"{path} line {number} is not a JSON object with a 'step': {line[:80]!r}; "
                "repair or delete that line."
            )
    return rows, torn


def _truncate_after(path: pathlib.Path, step: int) -> None:
    """Drops rows past `step` (a resumed run redoes those steps) and a torn last line."""
    if not path.exists():
        return
    rows, torn = _rows(path)
    kept = [row for row in rows if row["step"] <= step]
    if torn or len(kept) != len(rows):
        # Through a temporary file: a kill during the rewrite must not lose the rows.
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(json.dumps(row) + "\n" for row in kept))
        os.replace(tmp, path)


def read_metrics(workdir: str | pathlib.Path) -> list[dict]:
    """Rows of WORKDIR/metrics.jsonl (a torn last line is dropped with a warning)."""
    return _rows(pathlib.Path(workdir) / "metrics.jsonl")[0]
