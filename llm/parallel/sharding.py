"""Shardings for train state and batches, with divisibility checks before compiling."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from llm.errors import ConfigError
from llm.parallel.rules import LogicalRules, mesh_axes_for


def _axis_size(mesh: Mesh, axes: Any) -> int:
    if axes is None:
        return 1
    axes = (axes,) if isinstance(axes, str) else axes
    return int(np.prod([mesh.shape[a] for a in axes]))


def logical_to_shardings(logical_specs: Any, mesh: Mesh, rules: LogicalRules) -> Any:
    """Maps a pytree of logical PartitionSpecs to NamedShardings on `mesh`."""
    return nn.logical_to_mesh_sharding(logical_specs, mesh, rules)


def check_divisible(abstract_tree: Any, shardings: Any, logical_specs: Any) -> None:
    """Raises a ConfigError naming the first array dimension its mesh axes do not divide."""
    leaves = jax.tree_util.tree_flatten_with_path(abstract_tree)[0]
    shard_leaves = jax.tree_util.tree_leaves(
        shardings, is_leaf=lambda x: isinstance(x, NamedSharding)
    )
    spec_leaves = jax.tree_util.tree_leaves(
        logical_specs, is_leaf=lambda x: isinstance(x, PartitionSpec)
    )
    for (path, leaf), sharding, logical in zip(leaves, shard_leaves, spec_leaves, strict=True):
        for dim, axes in enumerate(sharding.spec):
            size = _axis_size(sharding.mesh, axes)
            if size > 1 and leaf.shape[dim] % size:
                name = jax.tree_util.keystr(path)
                logical_name = logical[dim] if dim < len(logical) else None
                raise ConfigError(
                    f"Parameter {name} has shape {leaf.shape}: dimension {dim} "
                    f"({logical_name!r}, size {leaf.shape[dim]}) is not divisible by mesh "
                    f"axes {axes} of size {size}. Change the model size, the mesh "
                    f"(config.mesh) or the rule for {logical_name!r} (config.mesh.rules)."
                )


def batch_sharding(mesh: Mesh, rules: LogicalRules) -> NamedSharding:
    """Sharding of a batch array: leading axis over the mesh axes of `act_batch`."""
    axes = tuple(a for a in mesh_axes_for("act_batch", rules) if a in mesh.shape)
    return NamedSharding(mesh, PartitionSpec(axes or None))


def data_parallel_size(mesh: Mesh, rules: LogicalRules) -> int:
    """Number of distinct batch shards (product of the batch's mesh axes)."""
    return _axis_size(mesh, batch_sharding(mesh, rules).spec[0])


def check_batch_size(global_batch_size: int, mesh: Mesh, rules: LogicalRules) -> None:
    """Raises when the global batch does not split evenly over the data-parallel axes."""
    dp = data_parallel_size(mesh, rules)
    if global_batch_size % dp:
        raise ConfigError(
            f"config.train.batch_size={global_batch_size} is not divisible by the data-parallel "
            f"size {dp} (mesh {dict(mesh.shape)}); use a multiple of {dp}."
        )
    if global_batch_size % jax.process_count():
        raise ConfigError(
            f"config.train.batch_size={global_batch_size} is not divisible by the process count "
            f"{jax.process_count()}; use a multiple of it."
        )


def host_batch_to_global(
    batch: Mapping[str, np.ndarray], sharding: NamedSharding
) -> dict[str, jax.Array]:
    """Assembles each process's host-local batch into global arrays on the mesh."""
    return {
        k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in batch.items()
    }
