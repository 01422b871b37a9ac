"""Logit transforms for sampling: temperature, top-k and nucleus (top-p) masks."""

import jax
import jax.numpy as jnp

from llm.errors import ConfigError

NEG_INF = -jnp.inf


def top_k_mask(logits_BxV: jax.Array, top_k: int) -> jax.Array:
    """Keeps exactly the top_k largest logits per row (ties broken by index); others -> -inf."""
    if top_k <= 0 or top_k >= logits_BxV.shape[-1]:
        return logits_BxV
    _, idx_BxK = jax.lax.top_k(logits_BxV, top_k)
    rows_Bx1 = jnp.arange(logits_BxV.shape[0])[:, None]
    keep_BxV = jnp.zeros(logits_BxV.shape, bool).at[rows_Bx1, idx_BxK].set(True)
    return jnp.where(keep_BxV, logits_BxV, NEG_INF)


def top_p_mask(logits_BxV: jax.Array, top_p: float | jax.Array) -> jax.Array:
    """Keeps the smallest set of most likely tokens whose probability sums to >= top_p; others -> -inf."""
    order_BxV = jnp.argsort(-logits_BxV, axis=-1)
    sorted_BxV = jnp.take_along_axis(logits_BxV, order_BxV, axis=-1)
    probs_BxV = jax.nn.softmax(sorted_BxV, axis=-1)
    # A token is needed iff the mass strictly before it is still short of top_p;
    # the most likely token always qualifies, so no row is left empty.
    mass_before_BxV = jnp.cumsum(probs_BxV, axis=-1) - probs_BxV
    keep_sorted_BxV = mass_before_BxV < top_p
    rows_Bx1 = jnp.arange(logits_BxV.shape[0])[:, None]
    keep_BxV = jnp.zeros(logits_BxV.shape, bool).at[rows_Bx1, order_BxV].set(keep_sorted_BxV)
    return jnp.where(keep_BxV, logits_BxV, NEG_INF)


def check_sampling_args(temperature: float | jax.Array, top_k: int, top_p: float | None) -> None:
    """Fails early on filter settings that are not traced and out of range."""
    if isinstance(temperature, (int, float)) and temperature < 0:
        raise ConfigError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if not isinstance(top_k, int) or top_k < 0:
        raise ConfigError(f"top_k must be a Python int >= 0 (0 = off), got {top_k!r}")
    if isinstance(top_p, (int, float)) and not 0 < top_p <= 1:
        raise ConfigError(f"top_p must be in (0, 1] (None or 1 = off), got {top_p}")


def sample_logits(
    logits_BxV: jax.Array,
    rng: jax.Array,
    temperature: float | jax.Array = 1.0,
    top_k: int = 0,
    top_p: float | None = None,
) -> jax.Array:
    """Draws one token per row after temperature, then top-k, then top-p; temperature 0 is argmax.

    top_k=0 and top_p=None (or >= 1) disable those filters; top_k must be a
    Python int (static), temperature and top_p may be traced.
    """
    check_sampling_args(temperature, top_k, top_p)
    logits_BxV = logits_BxV.astype(jnp.float32)
    greedy_B = jnp.argmax(logits_BxV, axis=-1).astype(jnp.int32)
    temperature = jnp.asarray(temperature, jnp.float32)
    # Dividing by 0 would give inf/nan logits; those rows take the argmax instead.
    safe_temperature = jnp.where(temperature > 0, temperature, 1.0)
    scaled_BxV = top_k_mask(logits_BxV / safe_temperature, top_k)
    if top_p is not None and not (isinstance(top_p, (int, float)) and top_p >= 1.0):
        scaled_BxV = top_p_mask(scaled_BxV, top_p)
    sampled_B = jax.random.categorical(rng, scaled_BxV, axis=-1).astype(jnp.int32)
    return jnp.where(temperature > 0, sampled_B, greedy_B)
