"""Loss sums and optimizer schedules against their formulas."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from llm.train.config import default_train_config
from llm.train.losses import cross_entropy_sums
from llm.train.optim import decay_mask, make_optimizer, make_schedule


def test_weighted_sums_ignore_padding():
    logits = jax.random.normal(jax.random.key(0), (2, 3, 5))
    targets = jnp.array([[1, 2, 3], [4, 0, 0]])
    weights = jnp.array([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    sums = cross_entropy_sums(logits, targets, weights)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    np.testing.assert_allclose(sums["nll_sum"], nll[0].sum() + nll[1, 0], rtol=1e-6)
    assert float(sums["weight_sum"]) == 4.0
    correct = (jnp.argmax(logits, -1) == targets) * weights
    assert float(sums["correct_sum"]) == float(correct.sum())


def test_label_smoothing_is_zero_for_the_smoothed_distribution():
    vocab, eps = 7, 0.1
    targets = jnp.array([[3]])
    probs = np.full((vocab,), eps / vocab)
    probs[3] += 1 - eps
    logits = jnp.log(jnp.asarray(probs))[None, None]
    sums = cross_entropy_sums(logits, targets, jnp.ones((1, 1)), label_smoothing=eps)
    assert abs(float(sums["loss_sum"])) < 1e-5
    # NLL stays the plain negative log-likelihood.
    np.testing.assert_allclose(sums["nll_sum"], -np.log(probs[3]), rtol=1e-6)


def test_z_loss_adds_squared_log_partition():
    logits = jnp.array([[[2.0, 0.0, -1.0]]])
    base = cross_entropy_sums(logits, jnp.array([[0]]), jnp.ones((1, 1)))
    with_z = cross_entropy_sums(logits, jnp.array([[0]]), jnp.ones((1, 1)), z_loss=1e-2)
    log_z = jax.nn.logsumexp(logits)
    np.testing.assert_allclose(with_z["loss_sum"] - base["loss_sum"], 1e-2 * log_z**2, rtol=1e-5)


def _cfg(**kw) -> ml_collections.ConfigDict:
    cfg = default_train_config()
    cfg.update(kw)
    return cfg


def test_rsqrt_schedule_is_aiayn_formula():
    d_model, warmup = 512, 4000
    peak = d_model**-0.5 * warmup**-0.5
    schedule = make_schedule(_cfg(schedule="rsqrt", learning_rate=peak, warmup_steps=warmup))
    for step in (1, 1000, 4000, 10000, 100000):
        expected = d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)
        # optax's linear warmup computes 1 - (1 - t/T) in float32: ~1e-4 relative error.
        np.testing.assert_allclose(schedule(step), expected, rtol=1e-3)


def test_cosine_and_wsd_shapes():
    cos = make_schedule(_cfg(schedule="cosine", learning_rate=1.0, warmup_steps=10, steps=110))
    np.testing.assert_allclose([cos(0), cos(10), cos(110)], [0.0, 1.0, 0.1], atol=1e-6)
    wsd = make_schedule(
        _cfg(schedule="wsd", learning_rate=1.0, warmup_steps=10, steps=100, decay_fraction=0.2)
    )
    np.testing.assert_allclose([wsd(10), wsd(79), wsd(100)], [1.0, 1.0, 0.1], atol=1e-6)
    with pytest.raises(ValueError, match="schedule='triangle' is unknown"):
        make_schedule(_cfg(schedule="triangle"))


def test_weight_decay_skips_vectors():
    params = {"kernel": jnp.ones((2, 2)), "scale": jnp.ones((2,)), "bias": jnp.ones((2,))}
    assert decay_mask(params) == {"kernel": True, "scale": False, "bias": False}
    tx = make_optimizer(_cfg(learning_rate=0.1, warmup_steps=0, weight_decay=0.5, steps=10))
    state = tx.init(params)
    zero_grads = jax.tree_util.tree_map(jnp.zeros_like, params)
    # With zero gradients only decoupled weight decay moves parameters.
    updates, _ = tx.update(zero_grads, state, params)
    assert float(jnp.abs(updates["scale"]).sum()) == 0.0
    np.testing.assert_allclose(updates["kernel"], -0.1 * 0.5 * np.ones((2, 2)), rtol=1e-6)
    with pytest.raises(ValueError, match="optimizer='adam' is unknown"):
        make_optimizer(_cfg(optimizer="adam"))
