"""A run killed (SIGKILL) at an arbitrary moment resumes from a complete checkpoint."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

# Several processes that time each other out: .ci/run runs these alone (not beside xdist workers).
pytestmark = pytest.mark.serial

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _command(workdir, data_dir):
    return [
        sys.executable,
        "-m",
        "launch.train",
        "--config=experiments/tiny_lm.py:smoke",
        f"--workdir={workdir}",
        f"--config.data.data_dir={data_dir}",
        "--config.train.steps=12",
        "--config.train.checkpoint_every=1",
        "--config.train.eval_every=0",
        "--config.train.sample_tokens=0",
    ]


def _losses(workdir):
    rows = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


@pytest.mark.slow
def test_sigkill_during_checkpointing_then_resume(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    data_dir = tmp_path / "data"
    reference = tmp_path / "reference"
    subprocess.run(
        _command(reference, data_dir),
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=900,
    )

    workdir = tmp_path / "killed"
    proc = subprocess.Popen(
        _command(workdir, data_dir),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoints = workdir / "checkpoints"
    deadline = time.time() + 600
    # Kill while a save is in flight: once a temporary checkpoint directory exists.
    while time.time() < deadline and proc.poll() is None:
        if checkpoints.is_dir() and any(
            ".orbax-checkpoint-tmp" in p.name for p in checkpoints.iterdir()
        ):
            if any(p.name.isdigit() for p in checkpoints.iterdir()):
                break
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    finished = subprocess.run(
        _command(workdir, data_dir), cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "Resumed from" in finished.stderr
    expected, got = _losses(reference), _losses(workdir)
    assert sorted(got) == list(range(1, 13))
    for step in range(1, 13):
        assert abs(got[step] - expected[step]) < 1e-6, step
