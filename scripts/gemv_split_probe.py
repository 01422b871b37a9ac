"""A decode step's matrix products on XLA:CPU: one dot vs the same dot in parts, vs OpenBLAS.

Issue #19 asked whether splitting a decode step's small GEMVs into independent dots would let
XLA:CPU run them on both cores. Each case chains 64 MB of weights (twice a 32 MiB L3, as a
real step streams its 55 MB from DRAM) through a jitted fori_loop, every output feeding the
next input, and prints the weight bandwidth of one dot, of column parts (concatenated) and
of row parts (summed), best of 5 rounds over all variants. `--rows 8` gives batch 8's [8, k] x [k, n] products instead, with
the batch split into halves as one more variant. "numpy" is the same chain of products in
NumPy (its OpenBLAS), for a library other than XLA's on the same machine.
Run: JAX_PLATFORMS=cpu python scripts/gemv_split_probe.py [--rows 8]
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

ITERS = 200
ROUNDS = 5
WEIGHT_BYTES = 64e6
SHAPES = [(384, 384), (1536, 384), (384, 1536), (384, 7680)]


def _seconds(fn, *args) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def _next_input(y: jax.Array, k: int) -> jax.Array:
    # Every output feeds the next input, so XLA cannot drop any part of a product.
    m, n = y.shape
    return jnp.tanh(y.reshape(m, n // k, k).sum(1) if n >= k else jnp.tile(y, (1, k // n)))


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


def _batch_halves(x, w):
    half = x.shape[0] // 2
    return jnp.concatenate([x[:half] @ w, x[half:] @ w], axis=0)


def _numpy_chain(x: np.ndarray, weights: list[np.ndarray]):
    outs = [np.empty((x.shape[0], w.shape[1]), np.float32) for w in weights]

    def run(x, weights):
        for _ in range(ITERS):
            for w, out in zip(weights, outs, strict=True):
                np.matmul(x, w, out=out)

    return run


def main() -> None:
    """Prints GB/s of weights read per variant and shape."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1, help="rows of the input (the batch)")
    rows_in = parser.parse_args().rows
    rng = np.random.default_rng(0)
    for k, n in SHAPES:
        layers = max(1, int(WEIGHT_BYTES // (k * n * 4)))
        weights = [rng.normal(size=(k, n)).astype(np.float32) / np.sqrt(k) for _ in range(layers)]
        x_np = rng.normal(size=(rows_in, k)).astype(np.float32)
        x = jnp.asarray(x_np)
        variants = {"one dot": (_chained(jnp.matmul, k), x, weights)}
        if rows_in > 1:
            variants["batch halves"] = (_chained(_batch_halves, k), x, weights)
        for p in (2, 4):
            cols = [[w[:, i * n // p : (i + 1) * n // p] for i in range(p)] for w in weights]
            rows = [[w[i * k // p : (i + 1) * k // p] for i in range(p)] for w in weights]
            variants[f"{p} column parts"] = (_chained(_columns, k), x, cols)
            variants[f"{p} row parts"] = (_chained(_rows, k), x, rows)
        variants["numpy"] = (_numpy_chain(x_np, weights), x_np, weights)
        for fn, *args in variants.values():
            _seconds(fn, *args)  # compile
        # Rounds over all variants, best of each: this VM's speed drifts over minutes.
        seconds = dict.fromkeys(variants, float("inf"))
        for _ in range(ROUNDS):
            for name, (fn, *args) in variants.items():
                seconds[name] = min(seconds[name], _seconds(fn, *args))
        gigabytes = layers * k * n * 4 * ITERS / 1e9
        table = ", ".join(f"{name} {gigabytes / s:.1f}" for name, s in seconds.items())
        print(f"[{rows_in}, {k}] x [{k}, {n}], GB/s: {table}", flush=True)


if __name__ == "__main__":
    main()
