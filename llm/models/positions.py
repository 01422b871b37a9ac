"""Positional information: sinusoidal (AIAYN), learned (GPT-2/BERT), rotary (LLaMA) and
RoPE scaling for long context (linear interpolation, Llama 3.1, YaRN)."""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from llm.models.config import ModelConfig
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


def _rope_power(head_dim: int, theta: float) -> np.ndarray:
    # theta^(2k/K) with float32 exponents, a float64 power rounded to float32: the values
    # transformers' float32 torch code gets, so frequencies agree to the bit (one ulp in a
    # frequency is an angle error of ~1e-3 rad at position 10^4).
    exponent_H = np.arange(0, head_dim, 2, dtype=np.float32) / np.float32(head_dim)
    return (np.float64(theta) ** exponent_H.astype(np.float64)).astype(np.float32)


def rope_inv_freq(head_dim: int, theta: float) -> np.ndarray:
    """Unscaled RoPE inverse frequencies theta^(-2k/K), k < K/2, float32 [K/2] (Su et al. 2021)."""
    return np.float32(1.0) / _rope_power(head_dim, theta)


def yarn_mscale(factor: float, mscale: float = 1.0) -> float:
    """YaRN's attention temperature 0.1 * mscale * ln(factor) + 1 (1 when factor <= 1)."""
    return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0


def _linear(inv_freq_H: np.ndarray, factor: float) -> np.ndarray:
    # Position interpolation: angle(p / s) = p * (inv_freq / s).
    return inv_freq_H / np.float32(factor)


def _llama3(
    inv_freq_H: np.ndarray, factor: float, original: int, low: float, high: float
) -> np.ndarray:
    # Wavelengths longer than original/low are interpolated (/ factor), shorter than
    # original/high kept, and smoothly blended in between (Llama 3.1, Meta's reference).
    # (torch computes scalar / tensor as reciprocal(tensor) * scalar; so do we, bit for bit.)
    wavelen_H = (np.float32(1.0) / inv_freq_H) * np.float32(2 * math.pi)
    scaled_H = np.where(wavelen_H > original / low, inv_freq_H / np.float32(factor), inv_freq_H)
    smooth_H = ((np.float32(1.0) / wavelen_H) * np.float32(original) - np.float32(low)) / (
        np.float32(high - low)
    )
    smoothed_H = (1 - smooth_H) * scaled_H / np.float32(factor) + smooth_H * scaled_H
    medium_H = ~(wavelen_H < original / high) & ~(wavelen_H > original / low)
    return np.where(medium_H, smoothed_H, scaled_H).astype(np.float32)


def _yarn_correction_dim(rotations: float, dim: int, theta: float, original: int) -> float:
    # The dim index whose frequency turns `rotations` times over the original context.
    return dim * math.log(original / (rotations * 2 * math.pi)) / (2 * math.log(theta))


def _yarn(
    head_dim: int,
    theta: float,
    factor: float,
    original: int,
    beta_fast: float,
    beta_slow: float,
    truncate: bool,
) -> np.ndarray:
    # Dims that turn more than beta_fast times over the original context extrapolate (keep
    # their frequency), fewer than beta_slow interpolate (/ factor), a linear ramp between.
    power_H = _rope_power(head_dim, theta)
    extrapolated_H = np.float32(1.0) / power_H
    interpolated_H = np.float32(1.0) / (np.float32(factor) * power_H)
    low = _yarn_correction_dim(beta_fast, head_dim, theta, original)
    high = _yarn_correction_dim(beta_slow, head_dim, theta, original)
    if truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, head_dim - 1)
    if low == high:
        high += 0.001  # as transformers, against a zero-width ramp
    index_H = np.arange(head_dim // 2, dtype=np.float32)
    ramp_H = np.clip((index_H - np.float32(low)) / np.float32(high - low), 0, 1)
    extrapolate_H = 1 - ramp_H
    return (interpolated_H * (1 - extrapolate_H) + extrapolated_H * extrapolate_H).astype(
        np.float32
    )


@functools.lru_cache(maxsize=64)
def _rope_table(
    head_dim: int,
    theta: float,
    kind: str,
    factor: float,
    original: int,
    low: float,
    high: float,
    beta_fast: float,
    beta_slow: float,
    attention_factor: float | None,
    truncate: bool,
) -> tuple[np.ndarray, float]:
    inv_freq_H = rope_inv_freq(head_dim, theta)
    scale = 1.0
    if kind == "linear":
        inv_freq_H = _linear(inv_freq_H, factor)
    elif kind == "llama3":
        inv_freq_H = _llama3(inv_freq_H, factor, original, low, high)
    elif kind == "yarn":
        inv_freq_H = _yarn(head_dim, theta, factor, original, beta_fast, beta_slow, truncate)
        scale = yarn_mscale(factor) if attention_factor is None else float(attention_factor)
    elif kind != "none":
        raise ValueError(f"unknown rope_scaling {kind!r}")
    inv_freq_H.setflags(write=False)  # shared by every call: never mutated
    return inv_freq_H, scale


def rope_frequencies(cfg: ModelConfig) -> tuple[np.ndarray, float]:
    """(inv_freq float32 [K/2], cos/sin scale) of cfg's RoPE scaling, computed once per setting.

    Matches transformers' ROPE_INIT_FUNCTIONS for 'default', 'linear', 'llama3' and 'yarn'.
    """
    return _rope_table(
        cfg.head_size,
        float(cfg.rope_theta),
        cfg.rope_scaling,
        float(cfg.rope_scaling_factor),
        int(cfg.rope_original_max_len),
        float(cfg.rope_low_freq_factor),
        float(cfg.rope_high_freq_factor),
        float(cfg.rope_beta_fast),
        float(cfg.rope_beta_slow),
        cfg.rope_attention_factor,
        bool(cfg.rope_yarn_truncate),
    )


def apply_rotary(
    x_BxLxHxK: jax.Array,
    positions_BxL: jax.Array,
    inv_freq_H: np.ndarray | jax.Array,
    attention_scale: float = 1.0,
) -> jax.Array:
    """Rotates pairs (k, k + K/2) by pos * inv_freq[k] (LLaMA/NeoX layout), in float32.

    inv_freq_H and attention_scale (multiplies cos and sin: YaRN) come from rope_frequencies
    or rope_inv_freq.
    """
    k = x_BxLxHxK.shape[-1]
    half = k // 2
    if np.shape(inv_freq_H) != (half,):
        raise ValueError(
            f"inv_freq_H has shape {np.shape(inv_freq_H)}, expected ({half},) for head size "
            f"{k}: pass rope_frequencies(cfg) or rope_inv_freq(head_dim, theta), not a theta"
        )
    angles_BxLx1xH = (positions_BxL.astype(jnp.float32)[..., None] * inv_freq_H)[:, :, None, :]
    sin, cos = jnp.sin(angles_BxLx1xH), jnp.cos(angles_BxLx1xH)
    if attention_scale != 1.0:
        sin, cos = sin * attention_scale, cos * attention_scale
    x = x_BxLxHxK.astype(jnp.float32)
    x1, x2 = x[..., :half], x[..., half:]
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x_BxLxHxK.dtype)
