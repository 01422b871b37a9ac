"""Timing of jitted decoding: new tokens per second after compilation."""

import time
from collections.abc import Callable
from dataclasses import dataclass

import jax


@dataclass(frozen=True)
class DecodeTiming:
    """Compile time, best run time and new tokens per second of one decode function."""

    compile_s: float
    run_s: float
    new_tokens_per_s: float


def time_decode(
    decode_fn: Callable[..., object], *args: object, new_tokens: int, repeats: int = 3
) -> DecodeTiming:
    """Times decode_fn(*args) (already jitted): first call as compile, then the best of `repeats`.

    new_tokens is the number of generated tokens per call over the whole batch
    (batch * max_decode_len when no row stops early).
    """
    start = time.perf_counter()
    jax.block_until_ready(decode_fn(*args))
    compile_s = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(decode_fn(*args))
        best = min(best, time.perf_counter() - start)
    return DecodeTiming(compile_s=compile_s, run_s=best, new_tokens_per_s=new_tokens / best)
