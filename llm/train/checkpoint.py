"""Orbax checkpoints of the train state and the data iterator position, verified on restore.

Each step holds the items 'state' (the TrainState), 'data' (the data iterator position)
and 'checksums': `integrity.fingerprint` of the state and a CRC of each process's data
position. The checksums are computed on the device arrays before the save, so orbax's
asynchronous writing does not matter, and they are an item of the same step, so they
appear with it in the one atomic rename that completes a checkpoint.
"""

from __future__ import annotations

import gc
import json
import pathlib
import re
import shutil
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils

from llm.errors import CheckpointCorruptError, ConfigError, WorkdirError, exception_chain
from llm.parallel.distributed import data_state_restorable
from llm.train import integrity, storage

ITEMS = ("state", "data", "checksums")
# What every corruption message ends with: the way out.
_FIX = (
    " Move that checkpoint aside to resume from an older one; with "
    "config.train.restore_fallback=True (the default) the trainer does so itself."
)
# Tensorstore's status line for a value it could not read ("OUT_OF_RANGE: Error reading ...").
_READ_ERROR = re.compile(r"\b[A-Z_]{5,}: Error (?:reading|opening|decoding)[^\n]*")
# Orbax's refusal to restore an array into another shape (its advice, strict=False, would pad).
_SHAPE_ERROR = re.compile(
    r"Requested shape: \(([\d, ]*)\) is not compatible with the stored shape: \(([\d, ]*)\)"
)


def checkpoint_dir(workdir: str | pathlib.Path) -> pathlib.Path:
    """WORKDIR/checkpoints, where every checkpoint of a run lives."""
    return pathlib.Path(workdir).absolute() / "checkpoints"


def check_workdir(workdir: str | pathlib.Path) -> None:
    """Fails (WorkdirError) unless WORKDIR/checkpoints can be created and written."""
    storage.check_writable(workdir, checkpoint_dir(workdir))


def make_manager(
    workdir: str | pathlib.Path,
    *,
    keep: int | None = None,
    async_save: bool = True,
    cleanup_tmp: bool = False,
) -> ocp.CheckpointManager:
    """The manager of `workdir/checkpoints` (every reader and writer of a run uses this one).

    It keeps the last `keep` finished checkpoints (None: all of them, as readers and
    exports need). `cleanup_tmp` removes the temporary directories of saves that never
    finished: only the run that writes the checkpoints may, since a reader beside a
    running trainer would delete the save in flight.
    """
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep,
        enable_async_checkpointing=async_save,
        create=True,
        cleanup_tmp_directories=cleanup_tmp,
    )
    # Orbax writes each step into a temporary directory and renames it only once every
    # item is complete, so a run killed mid-save leaves nothing that latest_step() returns.
    return ocp.CheckpointManager(checkpoint_dir(workdir), options=options, item_names=ITEMS)


def _everywhere(flag: bool) -> bool:
    """`flag` and-ed over the processes, so that every process takes the same branch."""
    if jax.process_count() == 1:
        return flag
    return bool(np.all(multihost_utils.process_allgather(np.asarray(flag))))


def _per_process(value: int) -> list[int]:
    if jax.process_count() == 1:
        return [value]
    gathered = multihost_utils.process_allgather(np.asarray(value, np.uint32))
    return [int(v) for v in np.ravel(gathered)]


def _position_crc(position: Any) -> int:
    """CRC of a data position, independent of how its JSON is formatted."""
    if isinstance(position, bytes):
        position = json.loads(position)
    return zlib.crc32(json.dumps(position, sort_keys=True).encode())


def _names(names: Sequence[str], limit: int = 3) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _complete_steps(directory: pathlib.Path) -> list[int]:
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def _resume_hint(directory: pathlib.Path) -> str:
    steps = _complete_steps(directory) if directory.is_dir() else []
    if not steps:
        return "the run starts afresh (no checkpoint is complete)."
    return f"the run resumes from checkpoint {steps[-1]}, which is intact."


def _disk_full(manager: ocp.CheckpointManager, step: int | None) -> WorkdirError:
    directory = pathlib.Path(manager.directory)
    what = f"Saving checkpoint {step}" if step is not None else "Saving a checkpoint"
    return storage.disk_full_error(
        directory, f"{what} in {directory.parent}", _resume_hint(directory)
    )


def _check_room(manager: ocp.CheckpointManager, step: int, state: Any) -> None:
    """Refuses a save the file system has no room for, before orbax writes any of it."""
    directory = pathlib.Path(manager.directory)
    steps = _complete_steps(directory)
    if steps:
        # The newest checkpoint has this one's layout: its size is the best estimate.
        need = storage.directory_bytes(directory / str(steps[-1]))
        sized = f"the size of checkpoint {steps[-1]}"
    else:
        leaves = jax.tree_util.tree_leaves(state)
        need = sum(x.size * x.dtype.itemsize for x in leaves) // jax.process_count()
        sized = "the size of the train state"
    if _everywhere(shutil.disk_usage(directory).free >= need):
        return
    raise WorkdirError(
        f"Not enough space for checkpoint {step} in {directory.parent}: "
        f"{storage.free_space(directory)} on its file system, and it needs about "
        f"{storage.format_bytes(need)} ({sized}). Free space or move the workdir, then "
        f"rerun: {_resume_hint(directory)}"
    )


def wait(manager: ocp.CheckpointManager) -> None:
    """Blocks until pending saves are written; a full disk is a WorkdirError naming the workdir."""
    try:
        manager.wait_until_finished()
    except Exception as e:
        if storage.is_disk_full(e):
            raise _disk_full(manager, None) from e
        raise


def save(
    manager: ocp.CheckpointManager,
    step: int,
    state: Any,
    data_iterator: Any | None,
) -> bool:
    """Saves state (async), the iterator position (sync, now) and their checksums at `step`.

    A state holding NaN/inf is never saved (FloatingPointError), and a save the disk has
    no room for is refused before it starts (WorkdirError); either way the checkpoints
    saved before stay as they are.
    """
    # Orbax waits for the previous save anyway: waiting here surfaces its errors as
    # ours and makes the free space final.
    wait(manager)
    fingerprint = integrity.fingerprint(state)
    if fingerprint.nonfinite:
        raise FloatingPointError(
            f"Not saving checkpoint {step}: the train state holds non-finite values (NaN/inf) "
            f"in {_names(fingerprint.nonfinite)}; the newest checkpoint stays step "
            f"{manager.latest_step()}."
        )
    _check_room(manager, step, state)
    checksums: dict[str, Any] = {"format": 1, "state": fingerprint.checksums}
    items = {"state": ocp.args.StandardSave(state)}
    if data_iterator is not None:
        checksums["data"] = _per_process(_position_crc(data_iterator.get_state()))
        items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
    items["checksums"] = ocp.args.JsonSave(checksums)
    try:
        return manager.save(step, args=ocp.args.Composite(**items), force=True)
    except Exception as e:
        if storage.is_disk_full(e):
            raise _disk_full(manager, step) from e
        raise


def _unreadable(error: BaseException) -> str | None:
    """The reason a checkpoint's files could not be read, when that is what `error` says."""
    for cause in exception_chain(error):
        match = _READ_ERROR.search(str(cause))
        if match:
            return match.group(0)[:400]
        if isinstance(cause, (json.JSONDecodeError, UnicodeDecodeError, FileNotFoundError)):
            return f"{type(cause).__name__}: {cause}"[:400]
    return None


def _saved_checksums(manager: ocp.CheckpointManager, step: int) -> dict[str, Any] | None:
    """The checksums saved with `step` (None for checkpoints written without them)."""
    location = pathlib.Path(manager.directory) / str(step) / "checksums"
    if not location.is_dir():
        return None
    try:
        restored = manager.restore(step, args=ocp.args.Composite(checksums=ocp.args.JsonRestore()))
        saved = dict(restored["checksums"])
        # A later format this code cannot check is left unchecked rather than refused.
        return saved if saved.get("format") == 1 else None
    except Exception as e:  # a damaged checksums file is as bad as a damaged array
        raise CheckpointCorruptError(
            f"Checkpoint {step} ({location}) cannot be read: {type(e).__name__}: {e}.{_FIX}"
        ) from e


def _check_position(step_dir: pathlib.Path, step: int, expected: Sequence[int]) -> None:
    if len(expected) != jax.process_count():
        return  # another process count: the data position is not restored (see the trainer)
    path = step_dir / "data" / f"process_{jax.process_index()}-of-{jax.process_count()}.json"
    try:
        crc = _position_crc(json.loads(path.read_text()))
    except (OSError, ValueError) as e:
        raise CheckpointCorruptError(
            f"Checkpoint {step} ({path}) cannot be read: {type(e).__name__}: {e}.{_FIX}"
        ) from e
    if crc != expected[jax.process_index()]:
        raise CheckpointCorruptError(
            f"Checkpoint {step} ({path}): the data position differs from the checksum "
            f"written when it was saved.{_FIX}"
        )


def _path(keys: Sequence[Any]) -> str:
    return integrity.leaf_name(keys).replace("/", ".")


def _shapes(tree: Any) -> dict[str, tuple[int, ...]]:
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    return {_path(p): tuple(getattr(x, "shape", None) or ()) for p, x in leaves}


def saved_shapes(directory: str | pathlib.Path, step: int) -> dict[str, tuple[int, ...]] | None:
    """Shapes of the arrays of DIRECTORY/<step>'s state by dotted path (None: unreadable)."""
    location = pathlib.Path(directory) / str(step) / "state"
    handler = ocp.StandardCheckpointHandler()
    try:
        metadata = handler.metadata(location)
    except Exception:  # damaged metadata: restore() reports the checkpoint as corrupt
        return None
    finally:
        handler.close()
    return _shapes(getattr(metadata, "tree", metadata))


def shape_mismatches(
    directory: str | pathlib.Path, step: int, abstract: Any, *, partial: bool = False
) -> list[str]:
    """'path: (8, 4) saved vs (4, 4) now' per array DIRECTORY/<step> lacks or holds in another shape.

    With `partial`, arrays of the checkpoint beyond `abstract` are fine (a params-only
    restore). Empty when the shapes match or the metadata cannot be read.
    """
    saved = saved_shapes(directory, step)
    if saved is None:
        return []
    wanted = _shapes(abstract)
    out = []
    for path, shape in wanted.items():
        if path not in saved:
            out.append(f"{path}: not saved vs {shape} now")
        elif saved[path] != shape:
            out.append(f"{path}: {saved[path]} saved vs {shape} now")
    if not partial:
        out += [
            f"{path}: {saved[path]} saved vs not in the state now"
            for path in sorted(saved.keys() - wanted.keys())
        ]
    return out


def _check_shapes(manager: ocp.CheckpointManager, step: int, abstract: Any, partial: bool) -> None:
    # Orbax's own error (advising strict=False, which pads) comes with hundreds of lines of
    # noise from its pending reads; comparing the metadata first never starts them.
    mismatches = shape_mismatches(manager.directory, step, abstract, partial=partial)
    if mismatches:
        raise ConfigError(
            f"Checkpoint {step} in {manager.directory} holds a train state of another shape than "
            f"this config's ({_names(mismatches)}): it was trained with another model or "
            "optimizer config. Train this config in a new --workdir."
        )


def verify(step: int, location: pathlib.Path, tree: Any, saved: Mapping[str, str] | None) -> None:
    """Checks restored arrays against the checksums saved with them, and for NaN/inf."""
    fingerprint = integrity.fingerprint(tree)
    if saved is not None:
        bad = integrity.mismatches(saved, fingerprint.checksums)
        if bad:
            raise CheckpointCorruptError(
                f"Checkpoint {step} ({location}) does not match the checksums written when it "
                f"was saved: {_names(bad)} differ, so its files changed after the save.{_FIX}"
            )
    if fingerprint.nonfinite:
        raise CheckpointCorruptError(
            f"Checkpoint {step} ({location}) holds non-finite values (NaN/inf) in "
            f"{_names(fingerprint.nonfinite)}.{_FIX}"
        )


def _shape_mismatch(error: BaseException) -> re.Match | None:
    for cause in exception_chain(error):
        match = _SHAPE_ERROR.search(str(cause))
        if match:
            return match
    return None


def _read(manager: ocp.CheckpointManager, step: int, args: ocp.args.Composite) -> Any:
    try:
        return manager.restore(step, args=args)
    except Exception as e:
        # Orbax leaves the reads of the other arrays pending; collecting them now, while
        # the interpreter is whole, keeps hundreds of 'Exception ignored' lines off exit.
        gc.collect()
        mismatch = _shape_mismatch(e)
        if mismatch is not None:
            raise ConfigError(
                f"Checkpoint {step} in {manager.directory} holds arrays of other shapes than this "
                f"config's model (stored ({mismatch.group(2)}), now ({mismatch.group(1)})): it was "
                "trained with another config. Train this config in a new --workdir."
            ) from None
        reason = _unreadable(e)
        if reason is None:
            raise  # not the files' fault (a bug)
        location = pathlib.Path(manager.directory) / str(step) / "state"
        raise CheckpointCorruptError(
            f"Checkpoint {step} ({location}) cannot be read: {reason}.{_FIX}"
        ) from e


def restore(
    manager: ocp.CheckpointManager,
    abstract_state: Any,
    data_iterator: Any | None,
    step: int | None = None,
) -> tuple[Any, int] | None:
    """Restores the latest (or given) step onto the shardings of `abstract_state`, verified.

    Files that cannot be read, arrays or a data position that differ from the checksums
    saved with them, and NaN/inf in the state are a CheckpointCorruptError naming the step
    and the file. Checkpoints written without checksums are checked for NaN/inf only.
    """
    step = manager.latest_step() if step is None else step
    if step is None:
        return None
    step_dir = pathlib.Path(manager.directory) / str(step)
    saved = _saved_checksums(manager, step)
    if saved is not None and data_iterator is not None and saved.get("data"):
        _check_position(step_dir, step, saved["data"])
    _check_shapes(manager, step, abstract_state, partial=False)
    items = {"state": ocp.args.StandardRestore(abstract_state)}
    if data_iterator is not None:
        items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
    state = _read(manager, step, ocp.args.Composite(**items))["state"]
    verify(step, step_dir / "state", state, saved["state"] if saved else None)
    return state, step


def restore_params(manager: ocp.CheckpointManager, step: int, abstract_params: Any) -> Any:
    """Only the params of checkpoint `step` (not the optimizer state), verified like restore()."""
    item = {"params": abstract_params}
    _check_shapes(manager, step, item, partial=True)
    args = ocp.args.PyTreeRestore(
        item=item,
        restore_args=ocp.checkpoint_utils.construct_restore_args(item),
        partial_restore=True,
    )
    restored = _read(manager, step, ocp.args.Composite(state=args))["state"]
    saved = _saved_checksums(manager, step)
    location = pathlib.Path(manager.directory) / str(step) / "state"
    verify(step, location, restored, saved["state"] if saved else None)
    return restored["params"]


def _data_for(manager: ocp.CheckpointManager, step: int, data_iterator: Any | None) -> Any:
    """The iterator to restore the data position of `step` into, or None for weights only."""
    if data_iterator is None:
        return None
    directory = pathlib.Path(manager.directory)
    if not (directory / str(step) / "data").is_dir():
        return None  # written without a data position (launch.convert imports)
    if not data_state_restorable(directory, step):
        # Written by a different process count: each shard's position does not map onto
        # this run's shards, so the weights resume and the data restarts.
        logging.warning(
            "Checkpoint %d: data position of another process count; "
            "restoring the train state only.",
            step,
        )
        return None
    return data_iterator


def _set_aside(manager: ocp.CheckpointManager, step: int) -> pathlib.Path:
    """Renames checkpoint `step` to '<step>.corrupt', where nothing restores it."""
    directory = pathlib.Path(manager.directory)
    target = directory / f"{step}.corrupt"
    suffix = 1
    while target.exists():
        target = directory / f"{step}.corrupt-{suffix}"
        suffix += 1
    if jax.process_index() == 0:
        (directory / str(step)).rename(target)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(f"llm_set_aside_checkpoint_{step}")
    return target


def restore_newest(
    manager: ocp.CheckpointManager,
    abstract_state: Any,
    data_iterator: Any | None,
    *,
    fallback: bool = True,
) -> tuple[Any, int] | None:
    """The newest checkpoint that restores and verifies, or None when there is none.

    Without `fallback` the newest one's error is raised. With it, older checkpoints are
    tried in turn; once one restores, each newer one that failed is moved aside to
    '<step>.corrupt' with a warning (a step must not be left behind that the run will
    save again). When none restores, the newest one's error is raised and nothing moves.
    """
    failed: list[tuple[int, BaseException]] = []
    for step in sorted(manager.all_steps(), reverse=True):
        error = None
        try:
            result = restore(manager, abstract_state, _data_for(manager, step, data_iterator), step)
        # Any failure: proving an older checkpoint good shows it was this one's files.
        except Exception as e:
            error = e
        if not _everywhere(error is None):
            error = error or CheckpointCorruptError(f"Checkpoint {step}: another process failed.")
            # A config that does not fit the checkpoints fits no older one either.
            if not fallback or isinstance(error, ConfigError):
                raise error
            failed.append((step, error))
            continue
        for bad, why in failed:
            target = _set_aside(manager, bad)
            logging.warning(
                "%s Resuming from checkpoint %d instead (config.train.restore_fallback); "
                "checkpoint %d is kept as %s.",
                str(why).removesuffix(_FIX),
                step,
                bad,
                target,
            )
        if failed:
            manager.reload()
        return result
    if failed:
        raise failed[0][1]
    return None
