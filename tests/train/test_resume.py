"""Stop-and-resume reproduces an uninterrupted run; half-written checkpoints are ignored."""

import shutil

import numpy as np

from llm.train.loop import train_and_evaluate
from llm.train.metrics import read_metrics
from llm.train.optim import make_schedule
from tests.train.tiny import tiny_config


def _loss_curve(workdir):
    return {row["step"]: row["loss"] for row in read_metrics(workdir) if "loss" in row}


def test_resume_equals_uninterrupted_run(data_dir, tmp_path):
    config = tiny_config(data_dir, steps=8, checkpoint_every=4)
    train_and_evaluate(config, tmp_path / "straight")
    train_and_evaluate(config, tmp_path / "resumed", stop_at_step=4)
    assert sorted(_loss_curve(tmp_path / "resumed")) == [1, 2, 3, 4]
    train_and_evaluate(config, tmp_path / "resumed")
    straight, resumed = _loss_curve(tmp_path / "straight"), _loss_curve(tmp_path / "resumed")
    assert sorted(resumed) == list(range(1, 9))
    np.testing.assert_allclose(
        [resumed[s] for s in range(1, 9)], [straight[s] for s in range(1, 9)], rtol=0, atol=1e-6
    )
    # Each row logs the learning rate its step's update used (optax counts from 0).
    schedule = make_schedule(config.train)
    rates = {row["step"]: row["learning_rate"] for row in read_metrics(tmp_path / "resumed")}
    assert sorted(rates) == list(range(1, 9))
    np.testing.assert_allclose(
        [rates[s] for s in range(1, 9)], [float(schedule(s - 1)) for s in range(1, 9)], rtol=1e-6
    )
    assert rates[1] < rates[2]  # warmup: the first update is the smallest


def test_half_written_checkpoint_is_not_picked_up(data_dir, tmp_path):
    config = tiny_config(data_dir, steps=6, checkpoint_every=3)
    train_and_evaluate(config, tmp_path, stop_at_step=3)
    checkpoints = tmp_path / "checkpoints"
    # What a kill during the save of step 6 leaves: orbax's temporary directory.
    shutil.copytree(checkpoints / "3", checkpoints / "6.orbax-checkpoint-tmp-1234")
    for f in (checkpoints / "6.orbax-checkpoint-tmp-1234").rglob("*"):
        if f.is_file():
            f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
    train_and_evaluate(config, tmp_path)
    assert sorted(_loss_curve(tmp_path)) == list(range(1, 7))
    assert (checkpoints / "6").is_dir()
    # The next start removes what the failed save left.
    assert not (checkpoints / "6.orbax-checkpoint-tmp-1234").exists()
