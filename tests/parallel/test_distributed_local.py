"""2 local processes x 4 devices train like 1 process x 8 and write a checkpoint 1 process reads."""

import json
import os
import pathlib
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from llm import data as data_lib
from llm.config import load_config
from llm.train.loop import Trainer

# Several processes that time each other out: .ci/run runs these alone (not beside xdist workers).
pytestmark = pytest.mark.serial

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIG = "experiments/tiny_lm.py:smoke"


def _overrides(data_dir):
    return [
        ("data.data_dir", str(data_dir)),
        ("train.steps", "4"),
        ("train.log_every", "1"),  # each log blocks on the step: keeps gloo from deadlocking
        ("train.eval_every", "0"),
        ("train.sample_tokens", "0"),
        ("train.async_checkpointing", "False"),
    ]


class ShardsAsOneIterator:
    """The global batch a 2-process run sees (shard 0 rows, then shard 1), from one process."""

    def __init__(self, data_cfg, batch_size, seed, num_shards):
        self.iters = [
            data_lib.make_iterator(
                data_cfg,
                split=data_cfg.train_split,
                batch_size=batch_size // num_shards,
                seed=seed,
                shard_index=i,
                shard_count=num_shards,
                shuffle=True,
                num_epochs=None,
            )
            for i in range(num_shards)
        ]

    def __next__(self):
        parts = [next(it) for it in self.iters]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def get_state(self):
        return json.dumps([it.get_state() for it in self.iters]).encode()

    def set_state(self, state):
        for it, s in zip(self.iters, json.loads(state), strict=True):
            it.set_state(s)

    def start_prefetch(self):
        pass


def _losses(workdir):
    rows = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


@pytest.mark.slow
def test_two_processes_match_one_and_checkpoint_restores_in_one(tmp_path):
    data_dir = tmp_path / "data"
    config = load_config(CONFIG, _overrides(data_dir))
    data_lib.ensure_dataset(config.data)  # once, before two processes would race to build it

    args = [f"--config={CONFIG}", f"--workdir={tmp_path / 'multi'}"]
    args += [f"--config.{k}={v}" for k, v in _overrides(data_dir)]
    start = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "launch.local",
            "--num_processes=2",
            "--devices_per_process=4",
            "--",
            *args,
        ],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=900,
    )
    print(f"2 processes x 4 devices: {time.monotonic() - start:.0f}s")
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.count("Finished in") == 1  # only process 0 reports

    assert jax.device_count() == 8
    reference = Trainer(config, tmp_path / "single")
    reference.train_iter = ShardsAsOneIterator(
        config.data, config.train.batch_size, config.train.seed, num_shards=2
    )
    try:
        state, _ = reference.run()
    finally:
        reference.close()
    expected, got = _losses(tmp_path / "single"), _losses(tmp_path / "multi")
    assert sorted(got) == [1, 2, 3, 4]
    np.testing.assert_allclose([got[s] for s in got], [expected[s] for s in got], rtol=1e-5)

    # The 2-process checkpoint restores into one process (state only: shards differ).
    resumed = Trainer(config, tmp_path / "multi")
    try:
        restored = resumed.initial_state()
        assert int(restored.step) == 4
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(
                np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6
            ),
            restored.params,
            state.params,
        )
    finally:
        resumed.close()
