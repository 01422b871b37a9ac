"""The machine's measured matmul peak, the denominator of MFU on hardware without a datasheet."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp


def measure_matmul_peak(size: int = 2048, dtype: str = "float32", seconds: float = 2.0) -> float:
    """FLOP/s of a jitted square matmul on the default device, best of repeated timings."""
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.dtype(dtype))
    b = jax.random.normal(jax.random.key(1), (size, size), jnp.dtype(dtype))
    matmul = jax.jit(jnp.matmul)
    matmul(a, b).block_until_ready()
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or best == float("inf"):
        t0 = time.perf_counter()
        matmul(a, b).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best
