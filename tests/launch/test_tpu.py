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


def _launch_tpu(*args):
    return subprocess.run(
        [sys.executable, "-m", "launch.tpu", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_dry_run_prints_queued_resource_ssh_to_every_worker_of_every_slice():
    out = _launch_tpu(
        "--queued_resource=qr-2x-v5e-16",
        "--zone=us-west4-a",
        "--dry_run",
        "--",
        "--config=experiments/gpt2.py:1558m",
        "--workdir=gs://b/run",
        "--config.mesh.data=2",
        "--config.mesh.dcn_data=2",
    )
    assert out.returncode == 0, out.stderr
    argv = shlex.split(out.stdout)
    assert argv == [
        "gcloud",
        "compute",
        "tpus",
        "queued-resources",
        "ssh",
        "qr-2x-v5e-16",
        "--zone=us-west4-a",
        "--node=all",
        "--worker=all",
        "--command=cd ~/llm && python3 -m launch.train --config=experiments/gpt2.py:1558m "
        "--workdir=gs://b/run --config.mesh.data=2 --config.mesh.dcn_data=2",
    ]


def test_tpu_and_queued_resource_are_exclusive():
    out = _launch_tpu("--tpu=a", "--queued_resource=b", "--zone=z", "--dry_run")
    assert out.returncode == 2
    assert "exactly one of --tpu=NAME" in out.stderr and "--queued_resource=NAME" in out.stderr
