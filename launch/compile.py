"""Compile a config's train step ahead of time and report memory, FLOPs and shardings.

`python -m launch.compile --config=experiments/X.py[:arg] --devices=N [--hbm_gib=80]`
simulates N CPU devices, so a pod-sized mesh is checked on a laptop. Exits 1 when the
per-device peak exceeds --hbm_gib. A model dtype of `auto` resolves to float32 on these
CPU devices; pass --config.model.dtype=bfloat16 to size activations as an accelerator
run would (the paper experiments set bfloat16 explicitly).
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from llm.config import load_config, split_config_overrides

_CONFIG = flags.DEFINE_string("config", "experiments/tiny_lm.py", "Experiment config[:arg].")
_DEVICES = flags.DEFINE_integer("devices", 8, "Simulated CPU devices (mesh size).")
_HBM_GIB = flags.DEFINE_float("hbm_gib", 0.0, "Per-device memory budget in GiB (0: no check).")

_OVERRIDES: list[tuple[str, str]] = []


def _parse(argv: list[str]) -> list[str]:
    rest, overrides = split_config_overrides(argv)
    _OVERRIDES.extend(overrides)
    parsed = flags.FLAGS(rest)
    # Must be set before JAX initialises its CPU backend.
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + f" --xla_force_host_platform_device_count={_DEVICES.value}"
    )
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    return parsed


def main(argv: list[str]) -> None:
    del argv
    import jax

    from llm.train.aot import GIB, budget_advice, compile_train_step

    config = load_config(_CONFIG.value, _OVERRIDES)
    report = compile_train_step(config, jax.devices()[: _DEVICES.value])
    print(report.format())
    if _HBM_GIB.value > 0:
        advice = budget_advice(report, _HBM_GIB.value * GIB)
        if advice:
            print(f"error: {advice}", file=sys.stderr)
            sys.exit(1)
        print(f"fits: peak {report.peak_bytes / GIB:.2f} GiB <= {_HBM_GIB.value} GiB per device")


if __name__ == "__main__":
    app.run(main, flags_parser=_parse)
