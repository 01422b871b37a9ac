"""Batch-1 decode's matrix-vector products on XLA:CPU: one dot vs the same dot in parts.

Issue #19 asked whether splitting a decode step's small GEMVs into independent dots would let
XLA:CPU run them on both cores. Each case chains 64 MB of weights (twice a 32 MiB L3, as a
real step streams its 55 MB from DRAM) through a jitted fori_loop, every output feeding the
next input, and prints the weight bandwidth of one dot, of column parts (concatenated) and
of row parts (summed). Run: JAX_PLATFORMS=cpu python scripts/gemv_split_probe.py
"""

import time

import jax
import jax.numpy as jnp
import numpy as np

ITERS = 200
WEIGHT_BYTES = 64e6
SHAPES = [(384, 384), (1536, 384), (384, 1536), (384, 7680)]


def _best_seconds(fn, *args, repeats: int = 5) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return min(times)


def _next_input(y: jax.Array, k: int) -> jax.Array:
    # Every output feeds the next input, so XLA cannot drop any part of a product.
    n = y.shape[-1]
    return jnp.tanh(y.reshape(1, n // k, k).sum(1) if n >= k else jnp.tile(y, (1, k // n)))


def _chained(gemv, k: int):
    @jax.jit
    def run(x, weights):
        def body(_, x):
            for w in weights:
                x = _next_input(gemv(x, w), k)
            return x

        return jax.lax.fori_loop(0, ITERS, body, x)

    return run


def _columns(x, parts):
    return jnp.concatenate([x @ w for w in parts], axis=-1)


def _rows(x, parts):
    k = x.shape[-1] // len(parts)
    return sum(x[:, i * k : (i + 1) * k] @ w for i, w in enumerate(parts))


def main() -> None:
    """Prints GB/s of weights read per variant and shape."""
    rng = np.random.default_rng(0)
    for k, n in SHAPES:
        layers = max(1, int(WEIGHT_BYTES // (k * n * 4)))
        weights = [rng.normal(size=(k, n)).astype(np.float32) / np.sqrt(k) for _ in range(layers)]
        x = jnp.asarray(rng.normal(size=(1, k)).astype(np.float32))
        seconds = {"one dot": _best_seconds(_chained(jnp.matmul, k), x, weights)}
        for p in (2, 4):
            cols = [[w[:, i * n // p : (i + 1) * n // p] for i in range(p)] for w in weights]
            rows = [[w[i * k // p : (i + 1) * k // p] for i in range(p)] for w in weights]
            seconds[f"{p} column parts"] = _best_seconds(_chained(_columns, k), x, cols)
            seconds[f"{p} row parts"] = _best_seconds(_chained(_rows, k), x, rows)
        gigabytes = layers * k * n * 4 * ITERS / 1e9
        table = ", ".join(f"{name} {gigabytes / s:.1f}" for name, s in seconds.items())
        print(f"[1, {k}] x [{k}, {n}], GB/s: {table}", flush=True)


if __name__ == "__main__":
    main()
