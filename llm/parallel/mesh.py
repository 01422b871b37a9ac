"""Device mesh with the axes `data`, `fsdp`, `expert` and `tensor`, sized from config."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import AxisType, Mesh

from llm.errors import ConfigError

# Outermost to innermost: tensor parallelism, the most talkative, gets the closest devices.
MESH_AXES = ("data", "fsdp", "expert", "tensor")
# Axes a config written before they existed may lack; they default to size 1.
_OPTIONAL_AXES = ("expert",)


def resolve_mesh_shape(sizes: Mapping[str, int], num_devices: int) -> tuple[int, ...]:
    """Returns the (data, fsdp, expert, tensor) sizes with one -1 entry filled from `num_devices`."""
    shape = []
    for axis in MESH_AXES:
        if axis not in sizes and axis in _OPTIONAL_AXES:
            shape.append(1)
            continue
        if axis not in sizes:
            raise ConfigError(f"config.mesh.{axis} is missing; set it to a size or -1 to fill.")
        size = int(sizes[axis])
        if size == 0 or size < -1:
            raise ConfigError(
                f"config.mesh.{axis}={size} is not a valid mesh size; use a positive size or -1."
            )
        shape.append(size)
    fill_axes = [a for a, s in zip(MESH_AXES, shape, strict=True) if s == -1]
    if len(fill_axes) > 1:
        raise ConfigError(
            f"Only one mesh axis may be -1, got {fill_axes}; give explicit sizes to all but one."
        )
    known = int(np.prod([s for s in shape if s != -1]))
    if fill_axes:
        if num_devices % known:
            raise ConfigError(
                f"Mesh sizes {dict(zip(MESH_AXES, shape, strict=True))} cannot fill {num_devices} devices: "
                f"{num_devices} is not divisible by {known}. Pick sizes whose product divides "
                "the device count."
            )
        shape[MESH_AXES.index(fill_axes[0])] = num_devices // known
    elif known != num_devices:
        raise ConfigError(
            f"Mesh {dict(zip(MESH_AXES, shape, strict=True))} has {known} devices but {num_devices} are "
            f"available; make the product of config.mesh.data/fsdp/expert/tensor equal {num_devices} "
            "or set one of them to -1."
        )
    return tuple(shape)


def _device_grid(shape: tuple[int, ...], devices: Sequence[jax.Device]) -> np.ndarray:
    """Devices arranged in `shape`, following the physical topology where JAX knows it."""
    slices = sorted({getattr(d, "slice_index", 0) or 0 for d in devices})
    if len(slices) > 1:
        # Several TPU slices talk over the data-centre network: only data parallelism
        # (a gradient all-reduce per step) crosses them; fsdp and tensor stay inside one.
        if shape[0] % len(slices):
            raise ConfigError(
                f"config.mesh.data={shape[0]} must be a multiple of the {len(slices)} slices: "
                "data parallelism is what crosses slices."
            )
        per_slice = (shape[0] // len(slices), *shape[1:])
        return mesh_utils.create_hybrid_device_mesh(
            per_slice, (len(slices), 1, 1, 1), devices, allow_split_physical_axes=True
        )
    # Splitting physical axes lets a 4x4x4 TPU slice hold mesh axes of size 2 or 8.
    return mesh_utils.create_device_mesh(shape, devices, allow_split_physical_axes=True)


def make_mesh(sizes: Mapping[str, int], devices: Sequence[jax.Device] | None = None) -> Mesh:
    """Builds a mesh over `devices` (default: all) with Auto axis types for Flax constraints."""
    devices = list(devices if devices is not None else jax.devices())
    shape = resolve_mesh_shape(sizes, len(devices))
    # Auto axes: Flax logical constraints are sharding hints, not explicit-sharding types.
    return Mesh(
        _device_grid(shape, devices), MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES)
    )
