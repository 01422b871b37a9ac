"""Metric sinks: WORKDIR/metrics.jsonl, TensorBoard and optionally W&B, written by process 0."""

from __future__ import annotations

import json
import os
import pathlib
import secrets
import string
import subprocess
from collections.abc import Mapping
from typing import Any

import jax
import ml_collections
from absl import logging
from tensorboardX import SummaryWriter

from llm.errors import InputFileError
from llm.train import storage
from llm.train.config import wandb_enabled, wandb_missing_error

# The W&B run id of a workdir: a resumed run continues the same W&B run.
WANDB_ID_FILE = "wandb_id"


class MetricWriter:
    """Appends scalars to metrics.jsonl (one object per line), TensorBoard and, with
    config.train.wandb_project set, a W&B run."""

    def __init__(
        self,
        workdir: str | pathlib.Path,
        *,
        resume_step: int = 0,
        config: ml_collections.ConfigDict | None = None,
    ):
        """`config`: the run's resolved config; with train.wandb_project set, W&B gets the
        same scalars (and the config and git commit as the run's config)."""
        self.enabled = jax.process_index() == 0
        self.path = pathlib.Path(workdir) / "metrics.jsonl"
        self._wandb = None
        if not self.enabled:
            return
        wandb = _import_wandb(config.train) if config is not None else None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _truncate_after(self.path, resume_step)
        self._tb = SummaryWriter(str(pathlib.Path(workdir) / "tensorboard"))
        if wandb is not None:
            self._wandb = init_wandb(wandb, workdir, config)

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
        if self._wandb is not None:
            self._wandb.log({k: float(v) for k, v in scalars.items()}, step=int(step))

    def flush(self) -> None:
        """Makes everything written so far visible on disk."""
        if self.enabled:
            self._tb.flush()

    def close(self) -> None:
        """Flushes and closes the TensorBoard writer and finishes the W&B run."""
        if self.enabled:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def _import_wandb(train: ml_collections.ConfigDict) -> Any:
    """The wandb module if this run logs to W&B, else None; missing, a ConfigError."""
    if not wandb_enabled(train):
        return None
    try:
        import wandb
    except ImportError as e:
        raise wandb_missing_error(train) from e
    return wandb


def wandb_run_id(workdir: str | pathlib.Path) -> str:
    """The W&B run id kept in WORKDIR/wandb_id, made (8 random [a-z0-9]) on first use."""
    path = pathlib.Path(workdir) / WANDB_ID_FILE
    if path.is_file() and (run_id := path.read_text().strip()):
        return run_id
    alphabet = string.ascii_lowercase + string.digits
    run_id = "".join(secrets.choice(alphabet) for _ in range(8))
    storage.write_text(path, run_id + "\n")
    return run_id


def git_revision(directory: str | pathlib.Path | None = None) -> dict[str, Any]:
    """{'commit': HEAD, 'dirty': uncommitted changes to tracked files} of the git checkout
    holding `directory` (default: this package's source), or {} outside one or without git."""
    directory = directory or pathlib.Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(directory), *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return {}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status)} if status is not None else {"commit": commit}


def init_wandb(wandb: Any, workdir: str | pathlib.Path, config: ml_collections.ConfigDict) -> Any:
    """Starts (or, with the workdir's stored id, resumes) the run's W&B run."""
    workdir = pathlib.Path(workdir)
    train = config.train
    run_config = json.loads(config.to_json_best_effort())
    revision = git_revision()
    run_config["git_commit"] = revision.get("commit", "")
    run_config["git_dirty"] = revision.get("dirty", False)
    return wandb.init(
        project=train.wandb_project,
        entity=train.get("wandb_entity", "") or None,
        mode=train.get("wandb_mode", "offline"),
        dir=str(workdir),
        name=train.get("wandb_run_name", "") or workdir.absolute().name,
        group=train.get("wandb_group", "") or None,
        config=run_config,
        id=wandb_run_id(workdir),
        resume="allow",
    )


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
