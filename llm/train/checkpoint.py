"""Orbax checkpoints of the train state and the data iterator position."""

from __future__ import annotations

import pathlib
from typing import Any

import grain
import orbax.checkpoint as ocp


def checkpoint_dir(workdir: str | pathlib.Path) -> pathlib.Path:
    """WORKDIR/checkpoints, where every checkpoint of a run lives."""
    return pathlib.Path(workdir).absolute() / "checkpoints"


def make_manager(
    workdir: str | pathlib.Path, *, keep: int | None = None, async_save: bool = True
) -> ocp.CheckpointManager:
    """The manager of `workdir/checkpoints` (every reader and writer of a run uses this one).

    It keeps the last `keep` finished checkpoints (None: all of them, as readers and
    exports need). Each step holds the items 'state' and 'data' (the data iterator position).
    """
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep,
        enable_async_checkpointing=async_save,
        create=True,
    )
    # Orbax writes each step into a temporary directory and renames it only once every
    # item is complete, so a run killed mid-save leaves nothing that latest_step() returns.
    return ocp.CheckpointManager(
        checkpoint_dir(workdir), options=options, item_names=("state", "data")
    )


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
