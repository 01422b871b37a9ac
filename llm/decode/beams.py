"""Moving pytrees between the [B, K, ...] beam layout and the [B*K, ...] model layout."""

import jax
import jax.numpy as jnp

from llm.decode.step import PyTree


def flatten_beams(x_BxKx: jax.Array) -> jax.Array:
    """Merges the batch and beam axes: [B, K, ...] -> [B*K, ...] (example-major)."""
    return x_BxKx.reshape((x_BxKx.shape[0] * x_BxKx.shape[1],) + x_BxKx.shape[2:])


def unflatten_beams(x_Nx: jax.Array, beam_size: int) -> jax.Array:
    """Splits the merged axis back: [B*K, ...] -> [B, K, ...]."""
    return x_Nx.reshape((x_Nx.shape[0] // beam_size, beam_size) + x_Nx.shape[1:])


def _has_batch_axis(leaf: jax.Array, batch: int, batch_axis: int) -> bool:
    # Scalar bookkeeping leaves (the flax cache's 'cache_index') have no batch
    # axis and are shared by every row, so they are never repeated or gathered.
    return leaf.ndim > batch_axis and leaf.shape[batch_axis] == batch


def repeat_for_beams(tree: PyTree, beam_size: int, batch_size: int, batch_axis: int = 0) -> PyTree:
    """Repeats every leaf with a batch axis of size batch_size K times: B -> B*K rows."""

    def repeat(leaf):
        leaf = jnp.asarray(leaf)
        if not _has_batch_axis(leaf, batch_size, batch_axis):
            return leaf
        return jnp.repeat(leaf, beam_size, axis=batch_axis)

    return jax.tree.map(repeat, tree)


def gather_beams(tree: PyTree, beam_idx_BxK: jax.Array, batch_axis: int = 0) -> PyTree:
    """Reorders the B*K rows of every batched leaf: new beam k of example b is old beam beam_idx[b, k].

    Leaves whose axis `batch_axis` is not of size B*K (e.g. scalar cache indices)
    are returned unchanged. Use batch_axis=1 for caches of scanned layers.
    """
    batch_size, beam_size = beam_idx_BxK.shape
    offsets_Bx1 = jnp.arange(batch_size, dtype=beam_idx_BxK.dtype)[:, None] * beam_size
    flat_idx_N = (offsets_Bx1 + beam_idx_BxK).reshape(-1)

    def gather(leaf):
        leaf = jnp.asarray(leaf)
        if not _has_batch_axis(leaf, batch_size * beam_size, batch_axis):
            return leaf
        return jnp.take(leaf, flat_idx_N, axis=batch_axis)

    return jax.tree.map(gather, tree)


def gather_BxK(x_BxKx: jax.Array, idx_BxM: jax.Array) -> jax.Array:
    """Selects entries along the beam axis per example: out[b, m] = x[b, idx[b, m]]."""
    return jnp.take_along_axis(
        x_BxKx, idx_BxM.reshape(idx_BxM.shape + (1,) * (x_BxKx.ndim - 2)), axis=1
    )
