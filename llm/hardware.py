"""Accelerator datasheet figures: dense bf16 peak, memory per chip, interconnect bandwidth.

Vendor datasheets (no sparsity). For TPUs `hbm_bytes` is the memory the TPU compiler
(libtpu 0.0.42.1) reports as available to a program, a little below the datasheet's
(measured by compiling a step too large for each chip, 2026-12-01). `ici_bytes_per_s` is the chip's total inter-chip
bandwidth in one direction (TPU ICI; NVLink for NVIDIA GPUs); the planner uses it only
to rank candidate plans, never as a measurement.
"""

from __future__ import annotations

import dataclasses

from llm.errors import ConfigError

GIB = 1024**3


@dataclasses.dataclass(frozen=True)
class Chip:
    """One accelerator chip's datasheet figures."""

    name: str
    peak_flops: float  # dense bf16 matmul FLOP/s
    hbm_bytes: float  # memory per chip
    ici_bytes_per_s: float  # inter-chip bandwidth per chip, one direction


CHIPS: dict[str, Chip] = {
    c.name: c
    for c in (
        Chip("a100", 312e12, 80 * GIB, 300e9),
        Chip("h100", 989e12, 80 * GIB, 450e9),
        Chip("h200", 989e12, 141e9, 450e9),
        Chip("tpu_v4", 275e12, 30.75 * GIB, 300e9),
        Chip("tpu_v5e", 197e12, 15.75 * GIB, 200e9),
        Chip("tpu_v5p", 459e12, 95.74 * GIB, 600e9),
        Chip("tpu_v6e", 918e12, 31.25 * GIB, 448e9),
    )
}

# jax's device_kind of chips whose marketing name differs.
_DEVICE_KIND_ALIASES = {"tpu_v5_lite": "tpu_v5e", "tpu_v6_lite": "tpu_v6e", "tpu_v5": "tpu_v5p"}


def chip_of(device_kind: str) -> Chip | None:
    """The chip of a device kind such as 'NVIDIA H200', 'TPU v5 lite' or 'tpu_v5p', if known."""
    key = device_kind.lower().replace("nvidia", "").replace(" ", "_").strip("_")
    key = _DEVICE_KIND_ALIASES.get(key, key)
    for name, chip in CHIPS.items():
        if name == key or key.startswith(name) or name.replace("_", "") == key.replace("_", ""):
            return chip
    return None


def get_chip(name: str) -> Chip:
    """The chip called `name` (a key of CHIPS or a jax device_kind), or a ConfigError naming them."""
    chip = chip_of(name)
    if chip is None:
        raise ConfigError(f"Unknown chip {name!r}; known: {', '.join(sorted(CHIPS))}.")
    return chip
