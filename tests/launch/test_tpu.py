"""launch.tpu builds the gcloud ssh invocation that runs the trainer on every pod host."""

import pathlib
import shlex
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_dry_run_prints_gcloud_ssh_to_all_workers():
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "launch.tpu",
            "--tpu=pod-v4-32",
            "--zone=us-central2-b",
            "--project=proj",
            "--setup=source ~/venv/bin/activate",
            "--dry_run",
            "--",
            "--config=experiments/llama.py:tiny",
            "--workdir=gs://b/run",
            "--config.mesh.fsdp=-1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    argv = shlex.split(out.stdout)
    assert argv[:7] == [
        "gcloud",
        "compute",
        "tpus",
        "tpu-vm",
        "ssh",
        "pod-v4-32",
        "--zone=us-central2-b",
    ]
    assert "--project=proj" in argv and "--worker=all" in argv
    command = argv[-1].removeprefix("--command=")
    assert command == (
        "cd ~/llm && source ~/venv/bin/activate && python3 -m launch.train "
        "--config=experiments/llama.py:tiny --workdir=gs://b/run --config.mesh.fsdp=-1"
    )


def test_tpu_and_zone_are_required():
    out = subprocess.run(
        [sys.executable, "-m", "launch.tpu", "--dry_run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert "--tpu" in out.stderr
