"""Throughput accounting (MFU) and `jax.profiler` traces of chosen training steps."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from typing import Any

import jax
from absl import logging

from llm import flops
from llm.errors import ConfigError


def resolve_peak_flops(spec: str) -> float | None:
    """Per-device peak FLOP/s from '' (none), an accelerator name, 'measure' or a number."""
    if not spec:
        return None
    if spec in flops.PEAK_FLOPS:
        return flops.PEAK_FLOPS[spec]
    if spec == "measure":
        from llm.bench.peak import measure_matmul_peak

        return measure_matmul_peak(seconds=1.0)
    try:
        return float(spec)
    except ValueError:
        raise ConfigError(
            f"config.train.peak_flops={spec!r} is not a number, 'measure' or one of "
            f"{sorted(flops.PEAK_FLOPS)}."
        ) from None


class StepProfiler:
    """Writes a trace of steps [first, last] into WORKDIR/profile (TensorBoard or Perfetto)."""

    def __init__(self, workdir: str | pathlib.Path, steps: Sequence[int]):
        self.directory = pathlib.Path(workdir) / "profile"
        if steps and (len(steps) != 2 or not 0 < steps[0] <= steps[1]):
            raise ConfigError(
                f"config.train.profile_steps={tuple(steps)} must be () or (first, last) with "
                "0 < first <= last."
            )
        self.first, self.last = (steps[0], steps[1]) if steps else (0, -1)
        self.active = False

    def before_step(self, step: int) -> None:
        """Starts tracing at the first profiled step (process 0 only)."""
        if step == self.first and jax.process_index() == 0:
            jax.profiler.start_trace(str(self.directory))
            self.active = True

    def after_step(self, step: int, outputs: Any) -> None:
        """Stops tracing after the last profiled step, once its work has finished."""
        if self.active and step >= self.last:
            jax.block_until_ready(outputs)
            jax.profiler.stop_trace()
            self.active = False
            logging.info("Wrote a profile of steps %d-%d to %s", self.first, step, self.directory)
