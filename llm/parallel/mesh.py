"""Device mesh with the axes `data`, `fsdp`, `expert`, `context` and `tensor`, sized from config."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import AxisType, Mesh

from llm.errors import ConfigError

# Outermost to innermost: tensor parallelism, the most talkative, gets the closest devices;
# context parallelism (a ring of key/value blocks every layer) comes next.
MESH_AXES = ("data", "fsdp", "expert", "context", "tensor")
# Axes a config written before they existed may lack; they default to size 1.
_OPTIONAL_AXES = ("expert", "context")
# Config fields, not mesh axes: how many of an axis's shards lie in different TPU slices
# (over the data-centre network, DCN). Absent in older configs: 1. The other axes talk
# every layer and always stay inside a slice (ICI).
DCN_FIELDS = {"data": "dcn_data", "fsdp": "dcn_fsdp"}


def resolve_mesh_shape(sizes: Mapping[str, int], num_devices: int) -> tuple[int, ...]:
    """Returns the sizes of MESH_AXES, in order, with one -1 entry filled from `num_devices`."""
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
            f"available; make the product of config.mesh.data/fsdp/expert/context/tensor equal {num_devices} "
            "or set one of them to -1."
        )
    return tuple(shape)


def _dcn_sizes(sizes: Mapping[str, int]) -> tuple[int, ...]:
    """The config's DCN sizes per mesh axis (1 for axes that always stay inside a slice)."""
    dcn = []
    for axis in MESH_AXES:
        field = DCN_FIELDS.get(axis)
        value = sizes.get(field, 1) if field else 1
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(
                f"config.mesh.{field}={value!r} is not a slice count; use a positive int "
                f"(how many slices the {axis} axis spans; 1 keeps it inside one slice)."
            )
        dcn.append(value)
    return tuple(dcn)


def _slices(devices: Sequence[jax.Device]) -> dict[int, list[jax.Device]]:
    """Devices by TPU slice; devices without a slice_index (CPU, GPU) form one slice."""
    by_slice: dict[int, list[jax.Device]] = {}
    for d in devices:
        by_slice.setdefault(getattr(d, "slice_index", 0) or 0, []).append(d)
    return by_slice


def resolve_dcn_shape(
    sizes: Mapping[str, int], shape: tuple[int, ...], num_slices: int
) -> tuple[int, ...]:
    """The across-slice (DCN) part of each of MESH_AXES for a mesh of total sizes `shape`.

    config.mesh.dcn_data / dcn_fsdp say how many of the data / fsdp shards lie in different
    slices; left at 1 on several slices, all slices go on data.
    """
    dcn = list(_dcn_sizes(sizes))
    named = " x ".join(f"config.mesh.{f}={dcn[MESH_AXES.index(a)]}" for a, f in DCN_FIELDS.items())
    spread = int(np.prod(dcn))
    if num_slices == 1 and spread > 1:
        raise ConfigError(
            f"{named} spread the mesh over {spread} slices, but the devices are one slice; "
            "set them to 1, or run on that many slices (launch.tpu --queued_resource, "
            f"launch.compile --slices={spread})."
        )
    if spread == 1 and num_slices > 1:
        # The default: data parallelism (one gradient all-reduce per step) crosses slices.
        dcn[MESH_AXES.index("data")] = num_slices
    elif spread != num_slices:
        raise ConfigError(
            f"{named} = {spread} slices, but the devices are in {num_slices} slices; make "
            f"their product {num_slices} (or leave both 1 to put all slices on data)."
        )
    for axis, field in DCN_FIELDS.items():
        i = MESH_AXES.index(axis)
        if shape[i] % dcn[i] == 0:
            continue
        value = f"config.mesh.{axis}={shape[i]}" + (" (-1 filled)" if sizes.get(axis) == -1 else "")
        if sizes.get(field, 1) > 1:
            why = f"is not divisible by config.mesh.{field}={dcn[i]}"
            fix = f"Make config.mesh.{axis} a multiple of {dcn[i]} or change config.mesh.{field}"
        else:
            why = (
                f"is not divisible by the {num_slices} slices (config.mesh.dcn_data and "
                "dcn_fsdp are 1, so all slices lie on data)"
            )
            fix = (
                f"Make config.mesh.data a multiple of {num_slices}, or set "
                f"config.mesh.dcn_fsdp={num_slices} to put the slices on fsdp instead"
            )
        fill = [a for a in MESH_AXES if a not in DCN_FIELDS and sizes.get(a) == -1]
        if fill:
            fix += (
                f"; config.mesh.{fill[0]}=-1 took the remaining devices: give the -1 to data "
                "or fsdp, as expert, context and tensor stay inside one slice"
            )
        raise ConfigError(f"{value} {why}. {fix}.")
    return tuple(dcn)


def device_grid(sizes: Mapping[str, int], devices: Sequence[jax.Device]) -> np.ndarray:
    """Devices arranged in the mesh shape of `sizes`, following the physical topology.

    On several TPU slices the grid is hybrid: each mesh axis of size n = dcn x ici has its
    dcn part (config.mesh.dcn_data / dcn_fsdp) outermost, across slices over the
    data-centre network, and its ici part inside a slice.
    """
    devices = list(devices)
    shape = resolve_mesh_shape(sizes, len(devices))
    by_slice = _slices(devices)
    dcn = resolve_dcn_shape(sizes, shape, len(by_slice))
    if len(by_slice) == 1:
        # Splitting physical axes lets a 4x4x4 TPU slice hold mesh axes of size 2 or 8.
        return mesh_utils.create_device_mesh(shape, devices, allow_split_physical_axes=True)
    counts = {s: len(ds) for s, ds in sorted(by_slice.items())}
    if len(set(counts.values())) > 1:
        raise ConfigError(
            f"The slices hold different numbers of devices {counts}; a multi-slice mesh "
            "needs equal slices (the same topology in each)."
        )
    ici = tuple(n // d for n, d in zip(shape, dcn, strict=True))
    return mesh_utils.create_hybrid_device_mesh(ici, dcn, devices, allow_split_physical_axes=True)


def make_mesh(sizes: Mapping[str, int], devices: Sequence[jax.Device] | None = None) -> Mesh:
    """Builds a mesh over `devices` (default: all) with Auto axis types for Flax constraints."""
    devices = list(devices if devices is not None else jax.devices())
    # Auto axes: Flax logical constraints are sharding hints, not explicit-sharding types.
    return Mesh(
        device_grid(sizes, devices), MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES)
    )
