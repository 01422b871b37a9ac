"""launch.slurm scripts, and real jobs on the local test cluster (scripts/slurm_test_cluster.sh)."""

import csv
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import pytest

from llm import data as data_lib
from llm.config import load_config

# Several processes that time each other out: .ci/run runs these alone (not beside xdist workers).
pytestmark = pytest.mark.serial

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIG = "experiments/tiny_lm.py:smoke"


def _launch(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def test_dry_run_prints_sbatch_script_with_one_srun_task_per_gpu():
    out = _launch(
        "launch.slurm",
        "--nodes=2",
        "--gpus_per_node=8",
        "--partition=gpu",
        "--time=01:00:00",
        "--setup=source .venv/bin/activate",
        "--dry_run",
        "--python=python",
        "--",
        "--config=experiments/gpt2.py:tiny",
        "--config.train.steps=10",
    )
    assert out.returncode == 0, out.stderr
    script = out.stdout
    assert script.startswith("#!/bin/bash\n")
    for line in [
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=8",
        "#SBATCH --gpus-per-node=8",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=01:00:00",
        f"#SBATCH --chdir={ROOT}",
        "source .venv/bin/activate",
        "srun --kill-on-bad-exit=1 python -m launch.train --config=experiments/gpt2.py:tiny "
        "--config.train.steps=10",
    ]:
        assert line in script.splitlines(), (line, script)
    # Options before the command: sbatch reads #SBATCH lines only above the first command.
    header = script.split("set -euo pipefail")[0]
    assert header.count("#SBATCH") == 8


def _cluster_env():
    conf = os.environ.get("SLURM_CONF") or "/tmp/llm-slurm/slurm.conf"
    if not shutil.which("sbatch") or not pathlib.Path(conf).is_file():
        pytest.skip("no SLURM test cluster (scripts/slurm_test_cluster.sh start)")
    env = dict(os.environ, SLURM_CONF=conf)
    if subprocess.run(["sinfo", "-h"], env=env, capture_output=True).returncode != 0:
        pytest.skip("SLURM test cluster is not running (scripts/slurm_test_cluster.sh start)")
    return env


def _wait_job(job_id, env, timeout=1200):
    # `sbatch --wait` polls slowly; squeue answers as soon as the job leaves the queue.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["squeue", "-h", "-j", job_id], env=env, capture_output=True, text=True
        )
        if out.returncode == 0 and not out.stdout.strip():
            return
        time.sleep(1)
    subprocess.run(["scancel", job_id], env=env)
    raise AssertionError(f"job {job_id} still queued or running after {timeout}s")


def _job_id(stdout):
    return stdout.split("job ")[1].split()[0].rstrip(";")


def _data_dir(tmp_path):
    data_dir = tmp_path / "data"
    data_lib.ensure_dataset(load_config(CONFIG, [("data.data_dir", str(data_dir))]).data)
    return data_dir


@pytest.mark.slow
def test_two_task_job_finds_its_peer_from_slurm_env(tmp_path):
    env = _cluster_env()
    data_dir = _data_dir(tmp_path)
    log = tmp_path / "job.out"
    start = time.monotonic()
    out = _launch(
        "launch.slurm",
        "--nodes=1",
        "--tasks_per_node=2",
        f"--output={log}",
        f"--script={tmp_path / 'job.sbatch'}",
        "--setup=export JAX_PLATFORMS=cpu XLA_FLAGS=--xla_force_host_platform_device_count=2",
        "--",
        f"--config={CONFIG}",
        f"--workdir={tmp_path / 'run'}",
        f"--config.data.data_dir={data_dir}",
        "--config.train.steps=3",
        "--config.train.log_every=1",
        "--config.train.eval_every=0",
        "--config.train.sample_tokens=0",
        env=env,
    )
    assert out.returncode == 0, out.stderr
    _wait_job(_job_id(out.stdout), env)
    print(f"2-task SLURM job: {time.monotonic() - start:.0f}s")
    text = log.read_text()
    assert "Process 0 of 2 (slurm)" in text and "Process 1 of 2 (slurm)" in text, text[-3000:]
    assert "4 global devices" in text
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3]
    assert text.count("Finished in") == 1


@pytest.mark.slow
def test_four_point_sweep_as_job_array_finishes_and_collects(tmp_path):
    env = _cluster_env()
    data_dir = _data_dir(tmp_path)
    root = tmp_path / "sweep"
    start = time.monotonic()
    out = _launch(
        "launch.sweep",
        f"--config={CONFIG}",
        "--sweep=lr",
        "--backend=slurm",
        f"--root={root}",
        "--max_parallel=0",
        "--setup=export JAX_PLATFORMS=cpu",
        "--",
        f"--config.data.data_dir={data_dir}",
        "--config.train.steps=2",
        "--config.train.eval_every=2",
        "--config.train.sample_tokens=0",
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "Submitted array job" in out.stdout
    _wait_job(_job_id(out.stdout), env)
    print(f"4-point SLURM job array: {time.monotonic() - start:.0f}s")
    collected = _launch("launch.sweep", f"--collect={root}", env=env)
    assert collected.returncode == 0, collected.stdout + collected.stderr
    with (root / "results.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [r["status"] for r in table] == ["ok"] * 4
    assert {(r["train.learning_rate"], r["train.seed"]) for r in table} == {
        ("0.001", "0"),
        ("0.001", "1"),
        ("0.003", "0"),
        ("0.003", "1"),
    }
    assert all(float(r["eval/loss"]) > 0 for r in table)
    assert len(list(root.glob("slurm-*_*.out"))) == 4
