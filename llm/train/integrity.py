"""Checksums and finiteness of a train state, computed on the devices that hold it.

A checksum is two 32-bit sums over the array's elements, each element's bits multiplied
by an odd weight derived from its position. Integer sums wrap exactly, in any order, so
the value does not depend on the sharding, the mesh or the process count: a state
restored on another mesh checks against the checksums it was saved with. Changing any
one element always changes the first sum (an odd weight is invertible mod 2^32); the
second, of mixed bits, makes two compensating changes miss both with odds ~2^-64.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import NamedSharding, PartitionSpec

_WEIGHT = np.uint32(0x9E3779B1)  # 2^32 / golden ratio: spreads neighbouring positions
_MIX = np.uint32(0x85EBCA77)
_OFFSET = np.uint32(0x632BE5AB)


@dataclasses.dataclass(frozen=True)
class Fingerprint:
    """Checksum of every array of a tree (by name) and the names of those holding NaN/inf."""

    checksums: dict[str, str]
    nonfinite: list[str]


def leaf_name(path: Sequence[Any]) -> str:
    """'params/stack/layers_0/mlp/wi/kernel' for a pytree key path (dicts, dataclasses, tuples)."""
    parts = []
    for key in path:
        for attr in ("key", "name", "idx"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
        else:
            parts.append(str(key))
    return "/".join(parts)


def _words(x: jax.Array) -> jax.Array:
    """The bits of every element as uint32 (8-byte types give two words per element)."""
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    if x.dtype == jnp.bool_:
        return x.astype(jnp.uint32)
    unsigned = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint32}[x.dtype.itemsize]
    return lax.bitcast_convert_type(x, unsigned).astype(jnp.uint32)


def _positions(shape: tuple[int, ...]) -> jax.Array:
    """Each element's row-major index mod 2^32, built per dimension (no reshape, no gather)."""
    index = jnp.zeros(shape, jnp.uint32)
    stride = 1
    for dim in reversed(range(len(shape))):
        index = index + lax.broadcasted_iota(jnp.uint32, shape, dim) * np.uint32(stride % 2**32)
        stride *= shape[dim]
    return index


def _checksum(x: jax.Array) -> jax.Array:
    words = _words(x)
    position = _positions(words.shape)
    first = jnp.sum(words * (position * _WEIGHT | np.uint32(1)), dtype=jnp.uint32)
    mixed = (words ^ (words >> 16)) * _MIX
    second = jnp.sum(mixed ^ (position + _OFFSET), dtype=jnp.uint32)
    return jnp.stack([first, second])


def _is_float(x: Any) -> bool:
    return jnp.issubdtype(x.dtype, jnp.inexact)


def all_finite(tree: Any) -> jax.Array:
    """Whether every floating-point element of `tree` is finite (traceable; a scalar bool)."""
    flags = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree) if _is_float(x)]
    return jnp.all(jnp.stack(flags)) if flags else jnp.array(True)


def _digest(leaves: list[jax.Array]) -> tuple[list[jax.Array], list[jax.Array]]:
    sums = [_checksum(x) for x in leaves]
    finite = [jnp.all(jnp.isfinite(x)) if _is_float(x) else jnp.array(True) for x in leaves]
    return sums, finite


@functools.cache
def _jitted_digest(replicated: NamedSharding | None):
    return jax.jit(_digest, out_shardings=replicated) if replicated else jax.jit(_digest)


def _replicated(leaves: list[Any]) -> NamedSharding | None:
    # Outputs every process can read whole: replicated over the mesh the state lives on.
    for x in leaves:
        sharding = getattr(x, "sharding", None)
        if isinstance(sharding, NamedSharding):
            return NamedSharding(sharding.mesh, PartitionSpec())
    return None


def _host(x: jax.Array) -> np.ndarray:
    return np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array) else np.asarray(x)


def fingerprint(tree: Any) -> Fingerprint:
    """Checksums and NaN/inf check of every array in `tree`, in one jitted pass over it.

    Costs one read of the arrays on their devices (a few elementwise ops fused into a
    reduction per array); every process of a multi-process run must call it.
    """
    paths_leaves = jax.tree_util.tree_leaves_with_path(tree)
    names = [leaf_name(path) for path, _ in paths_leaves]
    leaves = [leaf for _, leaf in paths_leaves]
    sums, finite = _jitted_digest(_replicated(leaves))(leaves)
    checksums = {}
    for name, value in zip(names, sums, strict=True):
        first, second = (int(v) for v in _host(value))
        checksums[name] = f"{first:08x}{second:08x}"
    nonfinite = [name for name, ok in zip(names, finite, strict=True) if not bool(_host(ok))]
    return Fingerprint(checksums=checksums, nonfinite=nonfinite)


def mismatches(saved: Mapping[str, str], actual: Mapping[str, str]) -> list[str]:
    """Names whose checksum differs from, or is missing in, `saved` (which may hold more)."""
    return [name for name, value in actual.items() if saved.get(name) != value]
