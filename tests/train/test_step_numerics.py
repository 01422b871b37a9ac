"""Gradient accumulation, non-finite step skipping, weight-decay masks and bf16 compute."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm import models
from llm.bench.training import random_batch
from llm.models.config import ModelConfig
from llm.parallel import make_mesh, resolve_rules
from llm.train.config import default_train_config
from llm.train.optim import decay_mask, make_optimizer
from llm.train.state import create_sharded_state
from llm.train.step import train_step

CFG = ModelConfig(
    family="decoder", vocab_size=64, d_model=32, num_heads=2, d_ff=64, num_layers=2, max_len=16
)


def _setup(cfg=CFG, **train):
    tcfg = default_train_config()
    tcfg.update({"steps": 10, "warmup_steps": 0, "learning_rate": 1e-2, **train})
    tx = make_optimizer(tcfg)
    model = models.build_model(cfg)
    batch = random_batch(cfg, 8, 16, None, seed=1)
    # Uneven weights across rows: a mean of microbatch means would differ from the batch mean.
    batch["weights"] = (np.arange(16)[None] < np.arange(4, 12)[:, None]).astype(np.float32)
    mesh = make_mesh({"data": 1, "fsdp": 1, "tensor": 1}, jax.devices()[:1])
    state, _ = create_sharded_state(
        jax.random.key(0),
        model=model,
        tx=tx,
        example_batch=batch,
        mesh=mesh,
        rules=resolve_rules("dp"),
    )
    return state, model, tx, batch


def test_microbatches_give_the_full_batch_gradient():
    # Plain SGD with lr 1: the parameter change is exactly the gradient.
    state, model, tx, batch = _setup(
        optimizer="sgd", b1=0.0, learning_rate=1.0, schedule="constant", grad_clip_norm=0.0
    )
    results = {}
    for m in (1, 2, 4):
        step = jax.jit(functools.partial(train_step, model=model, tx=tx, seed=0, microbatches=m))
        new_state, metrics = step(state, batch)
        results[m] = (new_state.params, float(metrics["loss"]))
    for m in (2, 4):
        assert results[m][1] == pytest.approx(results[1][1], rel=1e-6)
        diffs = jax.tree_util.tree_map(
            lambda a, b: float(jnp.max(jnp.abs(a - b))), results[m][0], results[1][0]
        )
        assert max(jax.tree_util.tree_leaves(diffs)) < 1e-6


def test_nonfinite_step_is_skipped_and_counted():
    state, model, tx, batch = _setup()
    step = jax.jit(functools.partial(train_step, model=model, tx=tx, seed=0))
    bad = dict(batch, weights=batch["weights"] * np.nan)
    skipped, metrics = step(state, bad)
    assert int(metrics["nonfinite_in_row"]) == 1 and int(skipped.step) == 1
    same = jax.tree_util.tree_map(lambda a, b: bool(jnp.all(a == b)), skipped.params, state.params)
    assert all(jax.tree_util.tree_leaves(same))
    skipped2, metrics = step(skipped, bad)
    assert int(metrics["nonfinite_in_row"]) == 2
    recovered, metrics = step(skipped2, batch)
    assert int(metrics["nonfinite_in_row"]) == 0 and int(metrics["nonfinite_total"]) == 2
    changed = jax.tree_util.tree_map(
        lambda a, b: bool(jnp.any(a != b)), recovered.params, state.params
    )
    assert any(jax.tree_util.tree_leaves(changed))


def test_update_to_nonfinite_params_is_skipped():
    # Finite loss and gradients, but an infinite learning rate: the update is inf/NaN.
    state, model, tx, batch = _setup(
        optimizer="sgd", b1=0.0, learning_rate=float("inf"), schedule="constant"
    )
    step = jax.jit(functools.partial(train_step, model=model, tx=tx, seed=0))
    new_state, metrics = step(state, batch)
    assert bool(jnp.isfinite(metrics["loss"])) and bool(jnp.isfinite(metrics["grad_norm"]))
    assert int(metrics["nonfinite_in_row"]) == 1 and int(metrics["nonfinite_total"]) == 1
    same = jax.tree_util.tree_map(
        lambda a, b: bool(jnp.all(a == b)), new_state.params, state.params
    )
    assert all(jax.tree_util.tree_leaves(same))


def test_decay_mask_can_exclude_embeddings():
    params = {
        "token_embed": {"embedding": jnp.ones((4, 2))},
        "mlp": {"wi": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones((2,))}},
        "final_norm": {"scale": jnp.ones((2,))},
    }
    assert decay_mask(params) == {
        "token_embed": {"embedding": True},
        "mlp": {"wi": {"kernel": True, "bias": False}},
        "final_norm": {"scale": False},
    }
    assert decay_mask(params, decay_embeddings=False)["token_embed"]["embedding"] is False


@pytest.mark.slow
def test_bf16_compute_tracks_fp32_loss_curve():
    # Parameters and optimizer state stay float32; only the compute dtype changes.
    curves = {}
    for dtype in ("float32", "bfloat16"):
        state, model, tx, batch = _setup(CFG.replace(dtype=dtype))
        step = jax.jit(functools.partial(train_step, model=model, tx=tx, seed=0))
        losses = []
        for _ in range(20):
            state, metrics = step(state, batch)
            losses.append(float(metrics["loss"]))
        assert jax.tree_util.tree_leaves(state.params)[0].dtype == jnp.float32
        curves[dtype] = np.array(losses)
    assert curves["float32"][-1] < 0.7 * curves["float32"][0]
    # Stated tolerance: every step within 2% of the fp32 loss.
    np.testing.assert_allclose(curves["bfloat16"], curves["float32"], rtol=0.02)
