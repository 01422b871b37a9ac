"""Training with the sequence split over the `context` mesh axis (ring / all-gather
attention, zig-zag order) gives one device's losses; launch.train runs with it."""

import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from llm.config import load_config
from llm.train.program import build_train_program

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHRINK = {
    "model.num_layers": "2",
    "model.max_len": "32",
    "data.seq_len": "32",
    "train.batch_size": "8",
    "train.log_every": "1",
    "train.eval_every": "0",
    "train.checkpoint_every": "100",
}


def _program(mesh, attention="auto", devices=None):
    pairs = [*SHRINK.items(), *((f"mesh.{axis}", str(size)) for axis, size in mesh.items())]
    config = load_config("experiments/llama.py:tiny", pairs)
    with config.unlocked():  # the preset dict has no context_attention key to override
        config.model.context_attention = attention
    return build_train_program(config, devices=devices)


def _packed_batch(program, rng):
    """Random tokens in packed rows: 1-3 segments per row, padding at the end of some."""
    batch = {k: np.asarray(v).copy() for k, v in program.example_batch.items()}
    rows, length = batch["inputs"].shape
    for key in ("inputs", "targets"):
        batch[key] = rng.integers(0, 320, (rows, length)).astype(np.int32)
    segment_ids = np.ones((rows, length), np.int32)
    positions = np.tile(np.arange(length, dtype=np.int32), (rows, 1))
    for r in range(rows):
        cuts = sorted(rng.choice(np.arange(3, length - 3), size=r % 3, replace=False))
        for s, start in enumerate(cuts, start=2):
            segment_ids[r, start:] = s
            positions[r, start:] = np.arange(length - start)
        if r % 2:
            segment_ids[r, length - 5 :] = 0
    batch.update(segment_ids=segment_ids, positions=positions)
    batch["weights"] = (segment_ids > 0).astype(np.float32)
    return batch


def _losses(program, steps=3):
    state, losses, rng = program.init_state(), [], np.random.default_rng(0)
    with jax.set_mesh(program.mesh):
        for _ in range(steps):
            batch = _packed_batch(program, rng)
            batch = {k: jax.device_put(v, program.batch_sharding) for k, v in batch.items()}
            state, metrics = program.train_step(state, batch)
            losses.append(float(metrics["loss"]))
    return losses


@pytest.mark.slow
def test_context_meshes_give_one_devices_losses():
    one = dict(data=1, context=1)
    reference = _losses(_program(one, devices=jax.devices()[:1]))
    assert len(reference) == 3 and all(np.isfinite(reference))
    for mesh, attention in (
        (dict(data=2, context=4), "ring"),
        (dict(data=1, context=8), "all_gather"),
    ):
        losses = _losses(_program(mesh, attention))
        np.testing.assert_allclose(losses, reference, rtol=1e-4, err_msg=f"{mesh} {attention}")


@pytest.mark.slow
def test_launch_train_with_a_context_axis(data_dir, tmp_path):
    workdir = tmp_path / "run"
    flags = [f"--config.{k}={v}" for k, v in SHRINK.items()]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "launch.train",
            "--config=experiments/llama.py:tiny",
            f"--workdir={workdir}",
            f"--config.data.data_dir={data_dir}",
            "--config.train.steps=2",
            "--config.train.warmup_steps=1",
            "--config.mesh.data=2",
            "--config.mesh.context=4",
            *flags,
        ],
        cwd=ROOT,
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "mesh data=2 fsdp=1 context=4 tensor=1" in result.stderr
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) == 2 and all(np.isfinite(losses))
    # The end-of-run sample decodes on the same mesh (the KV cache path, unsplit).
    assert "Sample: " in result.stdout
