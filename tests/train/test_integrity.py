"""Checkpoints are verified when restored: a corrupt one is an error or falls back; NaNs never land."""

import json
import pathlib
import shutil

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
import pytest

from llm.errors import UserError
from llm.train import checkpoint as ckpt_lib
from llm.train.loop import Trainer, train_and_evaluate
from tests.train.tiny import tiny_config


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory) -> pathlib.Path:
    """A run of 6 steps with checkpoints 3 and 6 (copied by each test before it is damaged)."""
    workdir = tmp_path_factory.mktemp("trained")
    train_and_evaluate(tiny_config(data_dir, steps=6, checkpoint_every=3), workdir)
    return workdir


def _copy(trained: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
    workdir = tmp_path / "run"
    shutil.copytree(trained, workdir)
    return workdir


def largest_array_file(workdir: pathlib.Path, step: int) -> pathlib.Path:
    """The biggest file of checkpoint `step`'s train state: array data (OCDBT)."""
    files = [p for p in (workdir / "checkpoints" / str(step) / "state").rglob("*") if p.is_file()]
    return max(files, key=lambda p: p.stat().st_size)


def flip_bytes(path: pathlib.Path, count: int = 64) -> None:
    """Inverts `count` bytes in the middle of the file (what a bad disk or copy does)."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    for i in range(middle, middle + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _restored_step(data_dir: str, workdir: pathlib.Path, **train: object) -> int:
    trainer = Trainer(tiny_config(data_dir, steps=6, checkpoint_every=3, **train), workdir)
    try:
        return int(trainer.initial_state().step)
    finally:
        trainer.close()


def test_flipped_bytes_fall_back_to_the_previous_checkpoint(data_dir, trained, tmp_path):
    workdir = _copy(trained, tmp_path)
    flip_bytes(largest_array_file(workdir, 6))
    assert _restored_step(data_dir, workdir) == 3
    # The corrupt checkpoint is kept aside for inspection, where nothing restores it.
    assert [p.name.split(".")[0] for p in (workdir / "checkpoints").glob("6.corrupt*")] == ["6"]
    assert ckpt_lib.make_manager(workdir).all_steps() == [3]


def test_without_fallback_a_corrupt_checkpoint_is_one_clear_error(data_dir, trained, tmp_path):
    workdir = _copy(trained, tmp_path)
    flip_bytes(largest_array_file(workdir, 6))
    with pytest.raises(UserError, match=r"Checkpoint 6 .*checkpoints/6.*restore_fallback"):
        _restored_step(data_dir, workdir, restore_fallback=False)


def test_truncated_array_file_names_the_step_and_falls_back(data_dir, trained, tmp_path):
    workdir = _copy(trained, tmp_path)
    path = largest_array_file(workdir, 6)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(UserError, match=r"Checkpoint 6 .*checkpoints/6/state"):
        _restored_step(data_dir, workdir, restore_fallback=False)
    assert _restored_step(data_dir, workdir) == 3


def test_changed_data_position_is_detected(data_dir, trained, tmp_path):
    workdir = _copy(trained, tmp_path)
    path = next((workdir / "checkpoints" / "6" / "data").glob("process_*.json"))
    position = json.loads(path.read_text())
    position["batch_idx"] += 1
    path.write_text(json.dumps(position))
    assert _restored_step(data_dir, workdir) == 3


def _nan_state(data_dir: str, workdir: pathlib.Path):
    trainer = Trainer(tiny_config(data_dir, steps=6, checkpoint_every=3), workdir)
    state = trainer.initial_state()
    nan = jax.tree_util.tree_map(lambda x: x * jnp.nan, state.params)
    return trainer, state.replace(params=nan)


def test_a_state_with_nonfinite_params_is_never_saved(data_dir, trained, tmp_path):
    workdir = _copy(trained, tmp_path)
    trainer, state = _nan_state(data_dir, workdir)
    try:
        with pytest.raises(FloatingPointError, match=r"Not saving checkpoint 9: .*non-finite"):
            ckpt_lib.save(trainer.manager, 9, state, None)
        trainer.manager.wait_until_finished()
    finally:
        trainer.close()
    assert ckpt_lib.make_manager(workdir).all_steps() == [3, 6]


def test_a_checkpoint_with_nonfinite_params_is_not_restored(data_dir, trained, tmp_path):
    workdir = _copy(trained, tmp_path)
    trainer, state = _nan_state(data_dir, workdir)
    try:
        # Written around the checks, as a program without them (or an older version) would.
        trainer.manager.save(9, args=ocp.args.Composite(state=ocp.args.StandardSave(state)))
        trainer.manager.wait_until_finished()
    finally:
        trainer.close()
    with pytest.raises(UserError, match=r"Checkpoint 9 .*non-finite"):
        _restored_step(data_dir, workdir, restore_fallback=False)
    assert _restored_step(data_dir, workdir) == 6
