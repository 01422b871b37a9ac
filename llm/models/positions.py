"""Positional information: sinusoidal (AIAYN), learned (GPT-2/BERT), rotary (LLaMA)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from llm.models.layers import param_with_axes


def sinusoidal(
    positions_BxL: jax.Array,
    d_model: int,
    max_timescale: float = 10000.0,
    layout: str = "interleaved",
) -> jax.Array:
    """AIAYN 3.5: PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(...); float32 [B,L,D].

    layout='split' puts the same sines in dims [0, d/2) and cosines in [d/2, d) (Marian).
    """
    half = d_model // 2
    inv_freq_H = 1.0 / (max_timescale ** (jnp.arange(half, dtype=jnp.float32) * 2.0 / d_model))
    angles_BxLxH = positions_BxL.astype(jnp.float32)[..., None] * inv_freq_H
    if layout == "split":
        return jnp.concatenate([jnp.sin(angles_BxLxH), jnp.cos(angles_BxLxH)], axis=-1)
    # Interleave sin/cos so that dims 2i and 2i+1 share a frequency, as in the paper.
    pe_BxLxHx2 = jnp.stack([jnp.sin(angles_BxLxH), jnp.cos(angles_BxLxH)], axis=-1)
    return pe_BxLxHx2.reshape(*positions_BxL.shape, d_model)


class LearnedPositions(nn.Module):
    """Learned absolute position table [max_len, D] (GPT-2, BERT)."""

    max_len: int
    features: int
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32
    stddev: float = 0.02

    @nn.compact
    def __call__(self, positions_BxL: jax.Array) -> jax.Array:
        """Looks up position embeddings."""
        table_PxD = param_with_axes(
            self,
            "embedding",
            nn.initializers.normal(stddev=self.stddev),
            (self.max_len, self.features),
            (None, "embed"),
            self.param_dtype,
        )
        return jnp.take(table_PxD, positions_BxL, axis=0).astype(self.dtype)


def apply_rotary(x_BxLxHxK: jax.Array, positions_BxL: jax.Array, theta: float) -> jax.Array:
    """Rotates pairs (k, k + K/2) by angle pos * theta^(-2k/K) (LLaMA/NeoX layout), in float32."""
    k = x_BxLxHxK.shape[-1]
    half = k // 2
    inv_freq = 1.0 / (theta ** (jnp.arange(half, dtype=jnp.float32) * 2.0 / k))
    angles_BxLx1xH = (positions_BxL.astype(jnp.float32)[..., None] * inv_freq)[:, :, None, :]
    sin, cos = jnp.sin(angles_BxLx1xH), jnp.cos(angles_BxLx1xH)
    x = x_BxLxHxK.astype(jnp.float32)
    x1, x2 = x[..., :half], x[..., half:]
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x_BxLxHxK.dtype)
