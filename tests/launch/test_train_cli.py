"""`python -m launch.train` end to end on the tiny config, and its error messages."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _run(*args, cwd=ROOT):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`launch.train` of the smoke config, 4 steps: (workdir, data_dir, the finished process)."""
    base = tmp_path_factory.mktemp("train_cli")
    workdir, data_dir = base / "run", base / "data"
    result = _run(
        "launch.train",
        "--config=experiments/tiny_lm.py:smoke",
        f"--workdir={workdir}",
        f"--config.data.data_dir={data_dir}",
        "--config.train.steps=4",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, data_dir, result


def test_train_writes_metrics_events_checkpoint_and_sample(trained):
    workdir, _, result = trained
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


def test_train_prints_a_summary_not_the_config(trained):
    workdir, _, result = trained
    log = result.stderr
    assert f"Training experiments/tiny_lm.py:smoke (full config: {workdir}/config.json)" in log
    # The smoke config (batch 8 of 128 tokens) on the 8 devices of tests/conftest.py's XLA_FLAGS.
    assert "devices    8 cpu; mesh data=8 fsdp=1 tensor=1; rules fsdp" in log
    assert "8 global, 1 per device (split over data x fsdp = 8)" in log
    assert "1,024 tokens per step (8 x 128)" in log
    assert "adamw, peak lr 0.003, warmup 1, cosine decay to 0.0003 at step 4" in log
    assert "chunk_size:" not in log and "Config experiments/" not in log  # no YAML dump
    final_eval = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()][-1]
    assert (
        f"eval loss {final_eval['eval/loss']:.3f} nats/token; the grammar's entropy bound is "
        "0.375 (perplexity 1.455)"
    ) in log


def test_train_draws_curves_png(trained):
    workdir, _, result = trained
    assert f"Curves: {workdir}/curves.png" in result.stdout.splitlines()
    data = (workdir / "curves.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_changed_model_into_a_trained_workdir_is_one_error(trained):
    workdir, data_dir, _ = trained
    result = _run(
        "launch.train",
        "--config=experiments/tiny_lm.py:smoke",
        f"--workdir={workdir}",
        f"--config.data.data_dir={data_dir}",
        "--config.model.d_model=64",
    )
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    assert "model.d_model: 128 (workdir) vs 64 (now)" in errors[0]
    assert "new --workdir" in errors[0]
    assert "Exception ignored" not in result.stderr and "Traceback" not in result.stderr
    assert json.loads((workdir / "config.json").read_text())["model"]["d_model"] == 128


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
