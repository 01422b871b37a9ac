"""Orbax checkpoints of the train state and the data iterator position."""

from __future__ import annotations

import pathlib
from typing import Any

import grain
import orbax.checkpoint as ocp


def make_manager(
    workdir: str | pathlib.Path, *, keep: int, async_save: bool = True
) -> ocp.CheckpointManager:
    """A manager under `workdir/checkpoints` keeping the last `keep` finished checkpoints."""
    directory = pathlib.Path(workdir).absolute() / "checkpoints"
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep,
        enable_async_checkpointing=async_save,
        create=True,
    )
    # Orbax writes each step into a temporary directory and renames it only once every
    # item is complete, so a run killed mid-save leaves nothing that latest_step() returns.
    return ocp.CheckpointManager(directory, options=options, item_names=("state", "data"))


def save(
    manager: ocp.CheckpointManager,
    step: int,
    state: Any,
    data_iterator: Any | None,
) -> bool:
    """Saves state (async) and the iterator position (sync, now) at `step`; the caller picks steps."""
    items = {"state": ocp.args.StandardSave(state)}
    if data_iterator is not None:
        items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
    return manager.save(step, args=ocp.args.Composite(**items), force=True)


def restore(
    manager: ocp.CheckpointManager,
    abstract_state: Any,
    data_iterator: Any | None,
    step: int | None = None,
) -> tuple[Any, int] | None:
    """Restores the latest (or given) step onto the shardings of `abstract_state`."""
    step = manager.latest_step() if step is None else step
    if step is None:
        return None
    items = {"state": ocp.args.StandardRestore(abstract_state)}
    if data_iterator is not None:
        items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
    restored = manager.restore(step, args=ocp.args.Composite(**items))
    return restored["state"], step
