"""Ahead-of-time compilation of a config's train step: memory, FLOPs and time estimates, no run.

The devices decide the compiler: simulated CPU devices (XLA:CPU) or a TPU topology's
compile-only devices (`llm.parallel.topology`, the real TPU compiler from libtpu).

XLA's cost analysis counts a loop body once, whatever its trip count: a step scanned
over L layers, or accumulating over m microbatches, reports the FLOPs of one layer and
one microbatch, and the TPU compiler's time estimate of such a step is not even that
(loop overheads weigh in). `compile_train_step(..., estimate_time=True)` therefore also
compiles two loop-free variants, one and two layers per stack unrolled at one
microbatch's rows, and extrapolates: per microbatch = c(1) + (L - 1) * (c(2) - c(1)),
times m. That counts the optimizer update m times instead of once (an overestimate
of about (m - 1) elementwise AdamW passes over the device's shard, ~1% of a 6.7B step).
Every figure it produces is labelled an estimate.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import time
from collections.abc import Iterator, Sequence

import jax
import ml_collections
import numpy as np

from llm import flops, memory
from llm.data.config import sequence_lengths
from llm.hardware import GIB, Chip, chip_of
from llm.models.config import ModelConfig
from llm.train.program import TrainProgram, build_train_program

_OOM = re.compile(
    r"required for (?:HLO temporaries|.*?) \((?P<need>[\d.]+)(?P<unit>[KMGT])\).*?"
    r"available HBM \((?P<have>[\d.]+)(?P<unit2>[KMGT])\)",
    re.S,
)
_UNITS = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


@dataclasses.dataclass
class CompileReport:
    """Per-device memory of the compiled train step, its FLOPs, estimates and largest arrays."""

    devices: int
    device_kind: str
    mesh: dict[str, int]
    argument_bytes: int
    output_bytes: int
    temp_bytes: int
    alias_bytes: int
    param_count: int
    state_bytes_per_device: int
    largest: list[tuple[str, tuple[int, ...], str, int]]
    # Analytical model FLOPs of the step over the whole mesh (llm/flops.py), and the
    # hardware FLOPs per device once rematerialisation's recomputation is added.
    model_flops_per_step: float
    hardware_flops_per_device: float
    # XLA's cost analysis of the compiled per-device program: loop bodies counted once.
    xla_flops_per_device: float
    analytic: memory.MemoryEstimate
    compile_seconds: float
    chip: Chip | None = None
    # Depth-extrapolated XLA FLOPs per device and the compiler's step-time estimate
    # (TPU only: cost_analysis()['optimal_seconds']); None when not estimated.
    xla_flops_per_device_extrapolated: float | None = None
    estimated_seconds: float | None = None
    # The compiler's refusal (e.g. out of HBM), when the step did not compile.
    compile_error: str | None = None

    @property
    def peak_bytes(self) -> int:
        """Arguments + temporaries + outputs not aliased to (donated) arguments."""
        return self.argument_bytes + self.temp_bytes + self.output_bytes - self.alias_bytes

    @property
    def hbm_bytes(self) -> float | None:
        """The chip's memory (datasheet), when the chip is known."""
        return self.chip.hbm_bytes if self.chip else None

    @property
    def estimated_mfu(self) -> float | None:
        """Model FLOPs per device over (estimated step time x chip peak); an estimate."""
        if not self.estimated_seconds or not self.chip:
            return None
        per_device = self.model_flops_per_step / self.devices
        return per_device / (self.estimated_seconds * self.chip.peak_flops)

    def format(self) -> str:
        """Human-readable summary; estimates are labelled as such."""
        chip = (
            f" ({self.chip.name}: {self.chip.hbm_bytes / GIB:.2f} GiB HBM per chip)"
            if self.chip
            else ""
        )
        a = self.analytic
        lines = [
            f"mesh {self.mesh} on {self.devices} devices of kind {self.device_kind!r}{chip}; "
            f"{self.param_count:,} parameters",
        ]
        if self.compile_error:
            lines.append(f"compile failed: {self.compile_error}")
        lines += [
            f"per device: arguments {self.argument_bytes / GIB:.3f} GiB, temporaries "
            f"{self.temp_bytes / GIB:.3f} GiB, outputs {self.output_bytes / GIB:.3f} GiB "
            f"(aliased {self.alias_bytes / GIB:.3f} GiB), peak {self.peak_bytes / GIB:.3f} GiB",
            f"  analytical estimate (llm/memory.py): temporaries {a.temporaries / GIB:.3f} GiB "
            f"= gradients {a.gradients / GIB:.3f} + saved activations "
            f"{a.saved_activations / GIB:.3f} + working {a.working / GIB:.3f} + gathered "
            f"params {a.gathered_params / GIB:.3f}",
            f"train state per device (params + optimizer): {self.state_bytes_per_device / GIB:.3f} GiB",
            f"FLOPs per step, model (analytical, llm/flops.py): {self.model_flops_per_step:.3e} "
            f"whole mesh = {self.model_flops_per_step / self.devices:.3e} per device",
            f"FLOPs per step, with remat recompute (analytical): "
            f"{self.hardware_flops_per_device:.3e} per device",
            f"FLOPs per step, XLA cost analysis: {self.xla_flops_per_device:.3e} per device "
            "(loop bodies over layers and microbatches counted once)",
        ]
        if self.xla_flops_per_device_extrapolated is not None:
            lines.append(
                f"FLOPs per step, XLA extrapolated over layers and microbatches: "
                f"{self.xla_flops_per_device_extrapolated:.3e} per device"
            )
        if self.estimated_seconds is not None:
            mfu = self.estimated_mfu
            lines.append(
                f"step time {self.estimated_seconds:.4f} s"
                + (f", MFU {mfu:.1%}" if mfu is not None else "")
                + " (estimated by the TPU compiler's cost model, not measured)"
            )
        lines.append(f"compile time {self.compile_seconds:.1f} s")
        lines.append("largest arrays (per-device bytes, sharding):")
        for name, shape, spec, nbytes in self.largest:
            lines.append(f"  {nbytes / GIB:8.3f} GiB  {name} {shape} {spec}")
        return "\n".join(lines)


def _per_device_bytes(x: jax.ShapeDtypeStruct) -> int:
    shard = x.sharding.shard_shape(x.shape)
    return int(np.prod(shard)) * x.dtype.itemsize


@contextlib.contextmanager
def compile_only_cache_off(devices: Sequence[jax.Device]) -> Iterator[None]:
    """No persistent compilation cache for a TPU topology's compile-only devices.

    Their executables cannot be loaded back without a TPU client, so caching them only
    writes files that every later read rejects with a warning.
    """
    if devices[0].platform != "tpu" or jax.devices()[0].platform == "tpu":
        yield
        return
    enabled = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    try:
        yield
    finally:
        jax.config.update("jax_enable_compilation_cache", enabled)


# Custom calls the TPU compiler's cost model cannot price: each adds exactly -1 s to
# cost_analysis()['optimal_seconds'] (libtpu 0.0.42.1; seen as totals of -5.0 + 0.00045 s
# with 5 of them in the program, -24 + 0.0013 s with 24, on 2026-12-01). They are
# layout ops (bitcasts), so their own time is taken as zero.
_UNPRICED_CUSTOM_CALLS = ("ConcatBitcast",)


def _cost(compiled: jax.stages.Compiled) -> dict[str, float]:
    """XLA's cost analysis; a TPU time estimate corrected for unpriced custom calls."""
    cost = compiled.cost_analysis()
    cost = dict((cost[0] if isinstance(cost, list) else cost) or {})
    seconds = cost.get("optimal_seconds")
    if seconds is not None:
        text = compiled.as_text()
        unpriced = sum(
            text.count(f'custom_call_target="{name}"') for name in _UNPRICED_CUSTOM_CALLS
        )
        seconds += unpriced
        # A cost model that still says <= 0 has priced nothing usefully: no estimate.
        cost["optimal_seconds"] = seconds if seconds > 0 else None
    return cost


def parse_out_of_memory(message: str) -> tuple[float, float] | None:
    """(needed, available) bytes from the TPU compiler's out-of-HBM error, if it is one."""
    match = _OOM.search(message)
    if not match:
        return None
    need = float(match.group("need")) * _UNITS[match.group("unit")]
    have = float(match.group("have")) * _UNITS[match.group("unit2")]
    return need, have


def _variant(
    config: ml_collections.ConfigDict, batch_size: int, **model_fields: object
) -> ml_collections.ConfigDict:
    """`config` unrolled, without microbatches, at `batch_size`, with model fields changed."""
    values = config.to_dict()
    values["model"].update(scan_layers=False, **model_fields)
    values["train"].update(microbatches=1, batch_size=batch_size)
    return ml_collections.ConfigDict(values)


def _depth_points(config: ml_collections.ConfigDict) -> tuple[dict, list[tuple[dict, int]]]:
    """The 1-layer-per-stack variant and, per stack, a variant one layer deeper with the
    number of further layers it stands for."""
    m = ModelConfig.from_dict(config.model.to_dict())
    if m.family != "encoder_decoder":
        return dict(num_layers=1), [(dict(num_layers=2), m.num_layers - 1)]
    enc, dec = m.encoder_layers, m.decoder_layers
    one = dict(num_encoder_layers=1, num_decoder_layers=1)
    if enc == dec:
        return one, [(dict(num_encoder_layers=2, num_decoder_layers=2), enc - 1)]
    return one, [
        (dict(num_encoder_layers=2, num_decoder_layers=1), enc - 1),
        (dict(num_encoder_layers=1, num_decoder_layers=2), dec - 1),
    ]


def _extrapolate(
    config: ml_collections.ConfigDict, devices: Sequence[jax.Device], real: dict[str, float]
) -> tuple[float | None, float | None]:
    """(XLA FLOPs, compiler seconds) per device of the whole step, extrapolated.

    Loops make XLA's costs unreliable (a body counted once, plus loop overheads), so the
    estimate comes from loop-free variants: one and two layers per stack, unrolled, at
    one microbatch's rows; per microbatch = c(1) + (L - 1) * (c(2) - c(1)), times m.
    """
    keys = ("flops", "optimal_seconds")
    m = config.train.microbatches
    if not ModelConfig.from_dict(config.model.to_dict()).scan_layers and m == 1:
        return real.get("flops"), real.get("optimal_seconds")

    def cost(fields: dict) -> dict[str, float]:
        variant = _variant(config, config.train.batch_size // m, **fields)
        return _cost(build_train_program(variant, devices=devices).lower_train_step().compile())

    one, deeper = _depth_points(config)
    base = cost(one)
    totals = {k: base.get(k) for k in keys}
    for fields, extra_layers in deeper:
        step = cost(fields)
        for k in keys:
            if totals[k] is None or step.get(k) is None:
                totals[k] = None  # one variant without an estimate: none for the step
            else:
                totals[k] += extra_layers * (step[k] - base[k])
    return tuple(None if totals[k] is None else totals[k] * m for k in keys)


def compile_train_step(
    config: ml_collections.ConfigDict,
    devices: Sequence[jax.Device] | None = None,
    *,
    top: int = 8,
    estimate_time: bool = False,
    chip: Chip | None = None,
) -> CompileReport:
    """Lowers and compiles the train step of `config` on a mesh of `devices` without running it.

    A TPU compiler's out-of-memory refusal becomes a report with `compile_error` set and
    `temp_bytes` the temporaries it asked for. `estimate_time` adds the depth-extrapolated
    FLOPs and (TPU) step-time estimate; `chip` defaults to the devices' own kind.
    """
    devices = list(devices or jax.devices())
    chip = chip or chip_of(devices[0].device_kind)
    with compile_only_cache_off(devices):
        return _compile_train_step(config, devices, top, estimate_time, chip)


def _compile_train_step(
    config: ml_collections.ConfigDict,
    devices: list[jax.Device],
    top: int,
    estimate_time: bool,
    chip: Chip | None,
) -> CompileReport:
    t0 = time.perf_counter()
    program = build_train_program(config, devices=devices)
    error, cost = None, {}
    try:
        compiled = program.lower_train_step().compile()
    except jax.errors.JaxRuntimeError as e:
        need_have = parse_out_of_memory(str(e))
        if need_have is None:
            raise
        error = str(e).splitlines()[0]
        argument = output = alias = sum(
            _per_device_bytes(x) for x in jax.tree_util.tree_leaves(program.abstract_state)
        )
        temp = int(need_have[0])
    else:
        mem = compiled.memory_analysis()
        argument, output = int(mem.argument_size_in_bytes), int(mem.output_size_in_bytes)
        temp, alias = int(mem.temp_size_in_bytes), int(mem.alias_size_in_bytes)
        cost = _cost(compiled)
    xla_extrapolated = seconds = None
    if estimate_time and error is None:
        xla_extrapolated, seconds = _extrapolate(config, devices, cost)
    compile_s = time.perf_counter() - t0
    return CompileReport(
        **_report_fields(program, config, devices, argument, output, temp, alias, cost, top),
        chip=chip,
        compile_seconds=compile_s,
        compile_error=error,
        xla_flops_per_device_extrapolated=xla_extrapolated,
        estimated_seconds=seconds,
    )


def _report_fields(
    program: TrainProgram,
    config: ml_collections.ConfigDict,
    devices: Sequence[jax.Device],
    argument: int,
    output: int,
    temp: int,
    alias: int,
    cost: dict[str, float],
    top: int,
) -> dict:
    """The report's fields that come from the program, the config and the memory analysis."""
    abstract = program.abstract_state
    leaves = jax.tree_util.tree_leaves_with_path(abstract)
    sized = sorted(
        (
            (jax.tree_util.keystr(path), tuple(x.shape), str(x.sharding.spec), _per_device_bytes(x))
            for path, x in leaves
        ),
        key=lambda row: -row[3],
    )
    cfg = program.model_cfg
    lengths = sequence_lengths(config.data)
    tokens = config.train.batch_size * lengths[-1]
    analytic = memory.estimate_memory(
        cfg,
        batch_size=config.train.batch_size,
        lengths=lengths,
        mesh_shape=dict(program.mesh.shape),
        rules=program.rules,
        microbatches=config.train.microbatches,
        optimizer=config.train.optimizer,
    )
    return dict(
        devices=len(devices),
        device_kind=devices[0].device_kind,
        mesh=dict(program.mesh.shape),
        argument_bytes=argument,
        output_bytes=output,
        temp_bytes=temp,
        alias_bytes=alias,
        param_count=sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(abstract.params)),
        state_bytes_per_device=sum(_per_device_bytes(x) for _, x in leaves),
        largest=sized[:top],
        model_flops_per_step=flops.train_flops_per_step(cfg, config.train.batch_size, *lengths),
        hardware_flops_per_device=tokens
        * flops.hardware_flops_per_token(cfg, *lengths)
        / len(devices),
        xla_flops_per_device=float(cost.get("flops", 0.0)),
        analytic=analytic,
    )


def budget_advice(report: CompileReport, hbm_bytes: float) -> str | None:
    """None when the step fits `hbm_bytes` per device, else what is big and what to change."""
    if report.peak_bytes <= hbm_bytes and not report.compile_error:
        return None
    names = ", ".join(f"{n} ({b / GIB:.2f} GiB)" for n, _, _, b in report.largest[:3])
    state = (
        f"Train state {report.state_bytes_per_device / GIB:.2f} GiB per device; largest: "
        f"{names}. Shard it over more devices (--config.mesh.fsdp=-1 with "
        "--config.mesh.rules=fsdp, or fsdp_tp with --config.mesh.tensor=N)."
    )
    activations = (
        f"Temporaries (activations) {report.temp_bytes / GIB:.2f} GiB per device: "
        "rematerialise (--config.model.remat=full or dots, --config.model.scan_layers=true) "
        "or split the batch (--config.train.microbatches=N); python -m launch.plan searches "
        "these for you."
    )
    first, second = (
        (activations, state)
        if report.temp_bytes > report.state_bytes_per_device
        else (state, activations)
    )
    return (
        f"Peak {report.peak_bytes / GIB:.2f} GiB per device exceeds the budget of "
        f"{hbm_bytes / GIB:.2f} GiB. {first} {second}"
    )
