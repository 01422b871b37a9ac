"""Meshes, logical-axis rules and shardings."""

from llm.parallel.mesh import MESH_AXES, make_mesh, resolve_mesh_shape
from llm.parallel.rules import PRESETS, resolve_rules
from llm.parallel.sharding import (
    batch_sharding,
    check_batch_size,
    check_divisible,
    host_batch_to_global,
    logical_to_shardings,
)

__all__ = [
    "MESH_AXES",
    "PRESETS",
    "batch_sharding",
    "check_batch_size",
    "check_divisible",
    "host_batch_to_global",
    "logical_to_shardings",
    "make_mesh",
    "resolve_mesh_shape",
    "resolve_rules",
]
