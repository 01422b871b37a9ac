"""Checkpoint averaging (AIAYN averaged the last 5 or 20 checkpoints)."""

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from llm.decode.step import PyTree


def average_params(params_list: Sequence[PyTree]) -> PyTree:
    """Elementwise mean of parameter pytrees of identical structure, in float32, cast back to each leaf's dtype."""
    if not params_list:
        raise ValueError("average_params needs at least one parameter pytree")
    structure = jax.tree.structure(params_list[0])
    for i, params in enumerate(params_list[1:], start=1):
        if jax.tree.structure(params) != structure:
            raise ValueError(
                f"parameter tree {i} differs in structure from tree 0; average checkpoints of one model"
            )
    count = len(params_list)

    def mean(*leaves):
        # Accumulate in float32 so bfloat16 checkpoints do not lose precision in the sum.
        total = sum(jnp.asarray(leaf, jnp.float32) for leaf in leaves)
        return (total / count).astype(jnp.asarray(leaves[0]).dtype)

    return jax.tree.map(mean, *params_list)
