"""Devices of a TPU topology for ahead-of-time compilation on a machine without TPUs.

libtpu (the `[tpu]` extra) compiles for any TPU topology from a CPU-only host:
`jax.experimental.topologies` describes the chips, and `jit(...).lower(...).compile()`
on a mesh of them runs the real TPU compiler (memory assignment, cost model). Nothing
executes. JAX_PLATFORMS must stay `cpu` on such a host, or JAX tries to open a TPU.
"""

from __future__ import annotations

import importlib.util
import os
import re

import jax

from llm.errors import ConfigError, TPUCompilerMissingError
from llm.hardware import Chip, get_chip

INSTALL_HINT = (
    "pip install -e '.[tpu]' (jax[tpu], which brings libtpu) and keep JAX_PLATFORMS=cpu "
    "on a machine without TPUs"
)
# How JAX spells a topology: generation, then chips per axis (v4/v5p are 3-D, v5e/v6e 2-D).
_TOPOLOGY = re.compile(r"^(v4|v5e|v5p|v6e):(\d+(?:x\d+){1,2})$")
_CHIP_OF_GENERATION = {"v4": "tpu_v4", "v5e": "tpu_v5e", "v5p": "tpu_v5p", "v6e": "tpu_v6e"}


def parse_topology(name: str) -> tuple[str, tuple[int, ...]]:
    """'v5p:4x4x4' -> ('v5p', (4, 4, 4)); a ConfigError names the accepted forms."""
    match = _TOPOLOGY.match(name.strip())
    if not match:
        raise ConfigError(
            f"--topology={name!r} is not a TPU topology; use GENERATION:AxBxC as JAX spells "
            "it, e.g. v4:2x2x2, v5e:4x4, v5p:4x4x4, v6e:8x8."
        )
    generation, dims = match.group(1), tuple(int(d) for d in match.group(2).split("x"))
    want = 3 if generation in ("v4", "v5p") else 2
    if len(dims) != want:
        raise ConfigError(
            f"--topology={name!r}: {generation} topologies have {want} dimensions, e.g. "
            f"{generation}:{'x'.join(['2'] * want)}."
        )
    return generation, dims


def topology_chip(name: str) -> Chip:
    """Datasheet figures of the chips of topology `name`."""
    return get_chip(_CHIP_OF_GENERATION[parse_topology(name)[0]])


def libtpu_available() -> bool:
    """Whether libtpu (the TPU compiler) is installed."""
    return importlib.util.find_spec("libtpu") is not None


def tpu_devices(name: str, slices: int = 1) -> list[jax.Device]:
    """Compile-only devices of `slices` copies of TPU topology `name` (e.g. 'v5p:4x4x4')."""
    parse_topology(name)
    if slices < 1:
        raise ConfigError(f"--slices={slices} must be >= 1.")
    if not libtpu_available():
        raise TPUCompilerMissingError(
            f"Compiling for --topology={name} needs the TPU compiler: {INSTALL_HINT}."
        )
    from jax.experimental import topologies

    # Compile-only use opens no TPU, so several processes (a launcher beside the tests,
    # pytest workers) may load libtpu at once; by default the first holds a lockfile.
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")

    # v4 runs one JAX device per chip (megacore: both TensorCores), as TPU VMs do; its
    # default config would give one device per core with half the chip's memory each.
    chip_config = "megacore" if name.startswith("v4:") else "default"
    description = topologies.get_topology_desc(
        platform="tpu", topology_name=name, chip_config_name=chip_config, num_slices=slices
    )
    return list(description.devices)
