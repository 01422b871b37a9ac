"""`python -m launch.train` end to end on the tiny config, and its error messages."""

import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _run(*args, cwd=ROOT):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_train_writes_metrics_events_checkpoint_and_sample(tmp_path):
    workdir = tmp_path / "run"
    result = _run(
        "launch.train",
        "--config=experiments/tiny_lm.py:smoke",
        f"--workdir={workdir}",
        f"--config.data.data_dir={tmp_path / 'data'}",
        "--config.train.steps=4",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train_rows] == [1, 2, 3, 4]
    assert all(r["loss"] > 0 for r in train_rows)
    assert all(r["tokens_per_sec"] > 0 for r in train_rows[1:])
    eval_rows = [r for r in rows if "eval/loss" in r]
    assert [r["step"] for r in eval_rows] == [2, 4]
    assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
    assert (workdir / "checkpoints" / "4").is_dir()
    assert json.loads((workdir / "config.json").read_text())["train"]["steps"] == 4
    assert "Sample: " in result.stdout


def test_mistyped_override_names_the_key(tmp_path):
    result = _run("launch.train", "--config.train.stesp=3", f"--workdir={tmp_path}")
    assert result.returncode == 2
    assert "config.train has no field 'stesp'" in result.stderr
    assert "Did you mean 'steps'" in result.stderr


def test_wrong_type_names_the_value(tmp_path):
    result = _run("launch.train", "--config.train.batch_size=eight", f"--workdir={tmp_path}")
    assert result.returncode == 2
    assert "--config.train.batch_size='eight': expected an int" in result.stderr


def test_list_prints_every_experiment():
    result = _run("launch.list")
    assert result.returncode == 0, result.stderr
    assert "experiments/tiny_lm.py" in result.stdout
    assert "Tiny GPT-style decoder" in result.stdout
