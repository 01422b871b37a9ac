"""Compiling decode loops: the XLA options they need, and the shape buckets that bound recompiles.

A decode loop updates each layer's KV cache in place inside a `while_loop`.
XLA's default copy insertion on CPU cannot prove that the cache is read
(attention) before it is written (the new token's key and value), so it
copies every cache tensor twice per step; region analysis proves the order
and removes the copies (measured: 24 copies of a 240 KiB tensor per step of
a 6-layer model, docs/benchmarks.md). The option is a CPU one; other
backends ignore it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

DECODE_COMPILER_OPTIONS: dict[str, Any] = {"xla_cpu_copy_insertion_use_region_analysis": True}

# Prompt widths and decode lengths are rounded up to these (then to multiples of the
# largest), so inputs of many lengths share a few compiled programs.
_BUCKETS = (8, 16, 32, 64, 128, 256, 512, 1024)


def jit_decode(fn: Callable[..., Any], **jit_kwargs: Any) -> Callable[..., Any]:
    """jax.jit for a function that runs a decode loop, with DECODE_COMPILER_OPTIONS."""
    return jax.jit(fn, compiler_options=DECODE_COMPILER_OPTIONS, **jit_kwargs)


def bucket(length: int, limit: int | None = None) -> int:
    """The smallest bucket >= length (8, 16, ..., 1024, then multiples of 1024), capped at limit."""
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    size = next((b for b in _BUCKETS if b >= length), None)
    if size is None:
        size = -(-length // _BUCKETS[-1]) * _BUCKETS[-1]
    return size if limit is None else max(length, min(size, limit))


def prefill_bucket(min_prompt_len: int) -> int:
    """Tokens every row feeds in the one-call prefill: the largest bucket (or 1) <= the shortest prompt.

    Rounding down keeps the prefill inside every row's prompt, and a few values
    keep the number of compiled programs small.
    """
    if min_prompt_len < 1:
        raise ValueError(f"prompts must hold at least one token, got {min_prompt_len}")
    fitting = [b for b in _BUCKETS if b <= min_prompt_len]
    return fitting[-1] if fitting else 1
