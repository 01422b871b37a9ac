"""Decode benchmark for `python -m launch.bench --suite=decode`: KV cache vs recompute, beam vs greedy.

A randomly initialised decoder generates `new_tokens` tokens after a BOS
prompt. EOS is set to an id the loops never see, so every row runs its full
length and tokens/s compare like for like. Throughput counts output tokens
per example (a beam of 4 yields one sequence), after compilation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from llm import models
from llm.decode.adapters import (
    decoder_recompute_tokens_to_logits,
    decoder_tokens_to_logits,
    init_cache,
)
from llm.decode.beam_search import beam_search
from llm.decode.compile import jit_decode
from llm.decode.sampling import greedy

# Never generated (ids are >= 0), so no row stops early.
_NO_EOS = -1

BENCH_MODEL = models.ModelConfig(
    family="decoder",
    vocab_size=8192,
    d_model=256,
    num_heads=4,
    d_ff=1024,
    num_layers=4,
    max_len=512,
)


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


def _runner(model, cfg, batch: int, new_tokens: int, method: str, beam_size: int):
    """Jitted params -> tokens for one (method, batch); method 'cache' or 'recompute'."""
    prompt_Bx1 = jnp.ones((batch, 1), jnp.int32)
    total = 1 + new_tokens

    def run(params):
        if method == "recompute":
            step, cache = decoder_recompute_tokens_to_logits(model, params, batch, total)
        else:
            step = decoder_tokens_to_logits(model, params)
            cache = init_cache(model, jnp.zeros((batch, total - 1), jnp.int32))
        if beam_size > 1:
            tokens, _ = beam_search(
                step,
                cache,
                prompt_Bx1,
                beam_size=beam_size,
                max_decode_len=new_tokens,
                eos_id=_NO_EOS,
            )
            return tokens
        return greedy(step, cache, prompt_Bx1, max_decode_len=new_tokens, eos_id=_NO_EOS)

    return jit_decode(run)


def decode_benchmark(
    cfg: models.ModelConfig = BENCH_MODEL,
    *,
    batch_sizes: Sequence[int] = (1, 8),
    new_tokens: int = 256,
    beam_size: int = 4,
    repeats: int = 2,
) -> list[dict[str, Any]]:
    """New tokens/s at each batch size: greedy with and without the KV cache, and beam search.

    Rows: {'name', 'batch', 'method' ('cache'/'recompute'), 'search'
    ('greedy'/'beam4'), 'new_tokens', 'compile_s', 'run_s', 'new_tokens_per_s'}
    plus 'cache_speedup' and 'same_tokens_as_recompute' on cached greedy rows and
    'beam_slowdown' on beam rows.
    """
    if cfg.max_len < new_tokens + 1:
        raise ValueError(f"max_len={cfg.max_len} must hold BOS + new_tokens={new_tokens}.")
    model = models.build_model(cfg)
    params = jax.jit(model.init)(jax.random.key(0), jnp.ones((1, 8), jnp.int32))["params"]
    rows: list[dict[str, Any]] = []
    for batch in batch_sizes:
        timings = {}
        cases = (("cache", "greedy", 1), ("recompute", "greedy", 1), ("cache", "beam", beam_size))
        for method, search, k in cases:
            run = _runner(model, cfg, batch, new_tokens, method, k)
            timing = time_decode(run, params, new_tokens=batch * new_tokens, repeats=repeats)
            timings[(method, search)] = timing
            rows.append(
                {
                    "name": f"decode b{batch} {method} {search}{k if k > 1 else ''}",
                    "batch": batch,
                    "method": method,
                    "search": f"{search}{k}" if k > 1 else search,
                    "new_tokens": new_tokens,
                    "compile_s": timing.compile_s,
                    "run_s": timing.run_s,
                    "new_tokens_per_s": timing.new_tokens_per_s,
                }
            )
        # The cache must not change what is decoded: the speed-up compares equal outputs.
        same = bool(
            jnp.array_equal(
                _runner(model, cfg, batch, new_tokens, "cache", 1)(params),
                _runner(model, cfg, batch, new_tokens, "recompute", 1)(params),
            )
        )
        cached, recompute = timings[("cache", "greedy")], timings[("recompute", "greedy")]
        beam = timings[("cache", "beam")]
        for row in rows[-3:]:
            if row["method"] == "cache" and row["search"] == "greedy":
                row["cache_speedup"] = cached.new_tokens_per_s / recompute.new_tokens_per_s
                row["same_tokens_as_recompute"] = same
            if row["search"].startswith("beam"):
                row["beam_slowdown"] = cached.new_tokens_per_s / beam.new_tokens_per_s
    return rows
