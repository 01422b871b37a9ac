"""Adafactor and SGD-with-momentum train the tiny decoder and resume exactly."""

import jax
import numpy as np
import optax
import pytest

from llm.train.loop import Trainer, train_and_evaluate
from llm.train.metrics import read_metrics
from tests.train.tiny import tiny_config

STEPS = 16
# Per-optimizer learning rates that make 16 steps of the tiny decoder learn.
LEARNING_RATES = {"adafactor": 0.1, "sgd": 0.3}


def _losses(workdir) -> dict[int, float]:
    return {row["step"]: row["loss"] for row in read_metrics(workdir) if "loss" in row}


def _state_leaves(opt_state, kind):
    return [
        s
        for s in jax.tree_util.tree_leaves(opt_state, is_leaf=lambda x: isinstance(x, kind))
        if isinstance(s, kind)
    ]


@pytest.mark.parametrize("optimizer", ["adafactor", pytest.param("sgd", marks=pytest.mark.slow)])
def test_optimizer_trains_and_resumes_exactly(optimizer, data_dir, tmp_path):
    config = tiny_config(
        data_dir,
        optimizer=optimizer,
        learning_rate=LEARNING_RATES[optimizer],
        steps=STEPS,
        warmup_steps=2,
        checkpoint_every=STEPS // 2,
        weight_decay=0.0,
    )
    train_and_evaluate(config, tmp_path / "straight")
    straight = _losses(tmp_path / "straight")
    assert sorted(straight) == list(range(1, STEPS + 1))
    # Learning: the mean of the last 4 losses is well below the first (uniform over bytes: ~5.6).
    first, last = straight[1], np.mean([straight[s] for s in range(STEPS - 3, STEPS + 1)])
    assert last < first - 1.0, (optimizer, first, last)

    # The state is the named optimizer's: Adafactor keeps factored second moments
    # (row and column vectors for matrices), SGD a momentum trace shaped like the params.
    state = Trainer(config, tmp_path / "straight").initial_state()
    opt_state = state.opt_state
    if optimizer == "adafactor":
        (factored,) = _state_leaves(opt_state, optax.FactoredState)
        kernel_rows = [v for v in jax.tree_util.tree_leaves(factored.v_row) if v.ndim == 1]
        assert kernel_rows, "no factored row statistics"
    else:
        (trace,) = _state_leaves(opt_state, optax.TraceState)
        params_shapes = jax.tree_util.tree_map(np.shape, state.params)
        assert jax.tree_util.tree_map(np.shape, trace.trace) == params_shapes

    # Stop at the checkpoint and resume: same losses as the uninterrupted run.
    train_and_evaluate(config, tmp_path / "resumed", stop_at_step=STEPS // 2)
    train_and_evaluate(config, tmp_path / "resumed")
    resumed = _losses(tmp_path / "resumed")
    np.testing.assert_allclose(
        [resumed[s] for s in range(1, STEPS + 1)],
        [straight[s] for s in range(1, STEPS + 1)],
        rtol=0,
        atol=1e-6,
    )
