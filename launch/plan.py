"""Rank parallelism plans for a config by compiling candidates for the target.

    python -m launch.plan --config=experiments/gpt3.py:6.7b --topology=v5p:4x4x4
    python -m launch.plan --config=experiments/gpt3.py:6.7b --devices=8 --chip=h100

Tries mesh splits (data x fsdp x tensor), remat policies, microbatches and attention
implementations (llm/train/plan.py says how it prunes), prints a ranked table and the
best plan as `--config.*` overrides for launch.train. Step times and MFU are the TPU
compiler's estimates (or, on simulated CPU devices, an analytical ranking model).
"""

from __future__ import annotations

import pathlib

from absl import flags

from launch.cli import run_main, simulate_cpu_devices, target_devices
from llm.config import load_config, split_config_overrides
from llm.errors import ConfigError

_CONFIG = flags.DEFINE_string("config", "experiments/gpt3.py:6.7b", "Experiment config[:arg].")
_TOPOLOGY = flags.DEFINE_string("topology", "", "TPU topology, e.g. v5p:4x4x4 (needs [tpu]).")
_SLICES = flags.DEFINE_integer("slices", 1, "Copies of --topology (multi-slice).")
_DEVICES = flags.DEFINE_integer("devices", 8, "Simulated CPU devices when no --topology.")
_CHIP = flags.DEFINE_string(
    "chip", "h100", "Accelerator whose HBM, peak and interconnect apply to CPU devices."
)
_TENSOR = flags.DEFINE_list("tensor", [], "Tensor-parallel sizes to try (default 1,2,4,8).")
_DATA = flags.DEFINE_list("data", [], "Data-parallel sizes to try (default: powers of 2).")
_REMAT = flags.DEFINE_list("remat", ["none", "dots", "full"], "Remat policies to try.")
_MICRO = flags.DEFINE_list("microbatches", [], "Microbatch counts (default 1,2,4,8,16).")
_ATTENTION = flags.DEFINE_list(
    "attention", [], "Attention implementations to try (default: the config's)."
)
_COMPILE_TOP = flags.DEFINE_integer(
    "compile_top", 3, "Stop compiling once this many candidates fit (0: analytical only)."
)
_MAX_COMPILES = flags.DEFINE_integer("max_compiles", 8, "Most candidates to compile.")
_CACHE_DIR = flags.DEFINE_string(
    "cache_dir",
    str(pathlib.Path("~/.cache/llm/plan").expanduser()),
    "Where compiled results are cached ('' disables).",
)
_ROWS = flags.DEFINE_integer("rows", 12, "Rows of the table to print.")

_OVERRIDES: list[tuple[str, str]] = []


def _parse(argv: list[str]) -> list[str]:
    rest, overrides = split_config_overrides(argv)
    _OVERRIDES.extend(overrides)
    parsed = flags.FLAGS(rest)
    simulate_cpu_devices(_DEVICES.value)
    return parsed


def _ints(name: str, values: list[str]) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in values)
    except ValueError:
        raise ConfigError(f"--{name}={','.join(values)} must be a list of integers.") from None
    if any(v < 1 for v in out):
        raise ConfigError(f"--{name}={','.join(values)}: every size must be >= 1.")
    return out


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise ConfigError(f"Unexpected arguments {argv[1:]}.")
    from llm.hardware import get_chip
    from llm.models.config import ATTENTION_IMPLS, REMATS
    from llm.parallel.topology import topology_chip
    from llm.train import plan as plan_lib

    for value in _REMAT.value:
        if value not in REMATS:
            raise ConfigError(f"--remat={value!r} is not one of {', '.join(REMATS)}.")
    for value in _ATTENTION.value:
        if value not in ATTENTION_IMPLS:
            raise ConfigError(f"--attention={value!r} is not one of {', '.join(ATTENTION_IMPLS)}.")
    if _COMPILE_TOP.value < 0:
        raise ConfigError(f"--compile_top={_COMPILE_TOP.value} must be >= 0.")
    config = load_config(_CONFIG.value, _OVERRIDES)
    devices = target_devices(_TOPOLOGY.value, _SLICES.value, _DEVICES.value)
    chip = topology_chip(_TOPOLOGY.value) if _TOPOLOGY.value else get_chip(_CHIP.value)
    space = plan_lib.SearchSpace(
        tensor=_ints("tensor", _TENSOR.value),
        data=_ints("data", _DATA.value),
        remat=tuple(_REMAT.value),
        microbatches=_ints("microbatches", _MICRO.value),
        attention_impl=tuple(_ATTENTION.value),
    )
    target = _TOPOLOGY.value or f"{len(devices)} simulated CPU devices as {chip.name}"
    print(f"Planning {_CONFIG.value} on {target}")
    rows = plan_lib.plan(
        config,
        devices,
        chip,
        space=space,
        compile_top=_COMPILE_TOP.value,
        max_compiles=_MAX_COMPILES.value,
        estimate=bool(_TOPOLOGY.value),
        cache_dir=pathlib.Path(_CACHE_DIR.value) if _CACHE_DIR.value else None,
        progress=print,
    )
    if not rows:
        raise ConfigError(
            f"No candidate of {_CONFIG.value} can fit {len(devices)} chips of "
            f"{chip.name}: use more chips, a smaller global batch or a smaller model."
        )
    print(plan_lib.format_table(rows, chip, limit=_ROWS.value))
    best = rows[0]
    if best.fits:
        print(f"best plan (compiled, fits): {best.candidate.flags()}")
    elif best.fits is None:
        print(f"best plan (analytical only, not compiled): {best.candidate.flags()}")
    else:
        raise ConfigError(
            f"None of the {sum(r.compiled is not None for r in rows)} compiled candidates fits "
            f"{chip.hbm_bytes / 2**30:.2f} GiB per chip; raise --max_compiles, use more chips "
            "or a smaller global batch."
        )


if __name__ == "__main__":
    run_main(main, flags_parser=_parse)
