"""Weighted cross-entropy with label smoothing and z-loss, in float32."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def cross_entropy_sums(
    logits: jax.Array,
    targets: jax.Array,
    weights: jax.Array,
    *,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
) -> dict[str, jax.Array]:
    """Sums of weighted loss, NLL, correct predictions and weights over all positions."""
    logits = logits.astype(jnp.float32)
    weights = weights.astype(jnp.float32)
    vocab = logits.shape[-1]
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    loss = nll
    if label_smoothing:
        confidence = 1.0 - label_smoothing
        soft = optax.smooth_labels(jax.nn.one_hot(targets, vocab), label_smoothing)
        loss = optax.softmax_cross_entropy(logits, soft)
        # Subtract the entropy of the smoothed targets so a perfect model scores 0.
        low = label_smoothing / vocab
        normalizer = -(
            (confidence + low) * jnp.log(confidence + low)
            + (vocab - 1) * low * jnp.log(low + 1e-20)
        )
        loss = loss - normalizer
    if z_loss:
        log_z = jax.nn.logsumexp(logits, axis=-1)
        loss = loss + z_loss * jnp.square(log_z)
    correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
    return {
        "loss_sum": jnp.sum(loss * weights),
        "nll_sum": jnp.sum(nll * weights),
        "correct_sum": jnp.sum(correct * weights),
        "weight_sum": jnp.sum(weights),
    }
