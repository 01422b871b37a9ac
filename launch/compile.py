"""Compile a config's train step ahead of time and report memory, FLOPs and estimates.

    python -m launch.compile --config=experiments/X.py[:arg] --topology=v5p:4x4x4
    python -m launch.compile --config=experiments/X.py[:arg] --devices=8 --chip=h100

`--topology` compiles with the real TPU compiler for that TPU slice (libtpu, the
`[tpu]` extra; nothing runs) and adds its step-time estimate. `--devices=N` simulates
N CPU devices (XLA:CPU's memory assignment; `--chip` names the accelerator whose
memory budget applies). Exits 1 when the step does not fit the budget: `--hbm_gib`,
else the chip's memory. A model dtype of `auto` resolves to float32 on CPU devices;
the paper experiments set bfloat16 explicitly so that their activations are sized as
an accelerator run's.
"""

from __future__ import annotations

import sys

from absl import flags

from launch.cli import run_main, simulate_cpu_devices, target_devices
from llm.config import load_config, split_config_overrides
from llm.errors import ConfigError

_CONFIG = flags.DEFINE_string("config", "experiments/tiny_lm.py", "Experiment config[:arg].")
_TOPOLOGY = flags.DEFINE_string(
    "topology", "", "TPU topology as JAX spells it (v4:2x2x2, v5e:4x4, v5p:4x4x4, v6e:8x8)."
)
_SLICES = flags.DEFINE_integer("slices", 1, "Copies of --topology (multi-slice).")
_DEVICES = flags.DEFINE_integer("devices", 8, "Simulated CPU devices when no --topology.")
_CHIP = flags.DEFINE_string(
    "chip", "", "Accelerator whose HBM and peak apply to CPU devices (h100, tpu_v5p, ...)."
)
_HBM_GIB = flags.DEFINE_float(
    "hbm_gib", None, "Per-device memory budget in GiB (default: the chip's; 0: no check)."
)
_ESTIMATE = flags.DEFINE_bool(
    "estimate",
    None,
    "Also compile the step unrolled at depth 2 to extrapolate FLOPs and the TPU compiler's "
    "step-time estimate over all layers (default: on with --topology of one slice).",
)

_OVERRIDES: list[tuple[str, str]] = []


def _parse(argv: list[str]) -> list[str]:
    rest, overrides = split_config_overrides(argv)
    _OVERRIDES.extend(overrides)
    parsed = flags.FLAGS(rest)
    simulate_cpu_devices(_DEVICES.value)
    return parsed


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise ConfigError(f"Unexpected arguments {argv[1:]}.")
    from llm.hardware import GIB, get_chip
    from llm.train.aot import budget_advice, compile_train_step

    if _HBM_GIB.value is not None and _HBM_GIB.value < 0:
        raise ConfigError(f"--hbm_gib={_HBM_GIB.value} must be >= 0 (0: no budget check).")
    config = load_config(_CONFIG.value, _OVERRIDES)
    devices = target_devices(_TOPOLOGY.value, _SLICES.value, _DEVICES.value)
    chip = get_chip(_CHIP.value) if _CHIP.value else None
    # The TPU compiler's cost model gives no usable time for a multi-slice program: it
    # prices its ZeroCrop/SliceId custom calls at -1 s each, and corrected for those a
    # 2-slice step came out faster than its per-slice step on one slice (2026-12-02).
    default_estimate = bool(_TOPOLOGY.value) and _SLICES.value == 1
    estimate = default_estimate if _ESTIMATE.value is None else _ESTIMATE.value
    report = compile_train_step(config, devices, estimate_time=estimate, chip=chip)
    print(report.format())
    budget = _HBM_GIB.value * GIB if _HBM_GIB.value is not None else report.hbm_bytes
    if budget:
        advice = budget_advice(report, budget)
        if advice:
            print(f"error: {advice}", file=sys.stderr)
            sys.exit(1)
        print(f"fits: peak {report.peak_bytes / GIB:.2f} GiB <= {budget / GIB:.2f} GiB per device")


if __name__ == "__main__":
    run_main(main, flags_parser=_parse)
