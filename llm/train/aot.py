"""Ahead-of-time compilation of a config's train step: memory, FLOPs and shardings, no run."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import ml_collections
import numpy as np

from llm import models
from llm.parallel import make_mesh, resolve_rules
from llm.train.loop import sequence_lengths
from llm.train.program import build_train_program

GIB = 1024**3


@dataclasses.dataclass
class CompileReport:
    """Per-device memory of the compiled train step, its FLOPs and the largest arrays."""

    devices: int
    mesh: dict[str, int]
    argument_bytes: int
    output_bytes: int
    temp_bytes: int
    alias_bytes: int
    flops_per_step: float
    param_count: int
    state_bytes_per_device: int
    largest: list[tuple[str, tuple[int, ...], str, int]]

    @property
    def peak_bytes(self) -> int:
        """Arguments + temporaries + outputs not aliased to (donated) arguments."""
        return self.argument_bytes + self.temp_bytes + self.output_bytes - self.alias_bytes

    def format(self) -> str:
        """Human-readable summary."""
        lines = [
            f"mesh {self.mesh} on {self.devices} devices; {self.param_count:,} parameters",
            f"per device: arguments {self.argument_bytes / GIB:.3f} GiB, temporaries "
            f"{self.temp_bytes / GIB:.3f} GiB, outputs {self.output_bytes / GIB:.3f} GiB "
            f"(aliased {self.alias_bytes / GIB:.3f} GiB), peak {self.peak_bytes / GIB:.3f} GiB",
            f"train state per device (params + optimizer): {self.state_bytes_per_device / GIB:.3f} GiB",
            f"FLOPs per step (XLA, whole mesh): {self.flops_per_step:.3e}",
            "largest arrays (per-device bytes, sharding):",
        ]
        for name, shape, spec, nbytes in self.largest:
            lines.append(f"  {nbytes / GIB:8.3f} GiB  {name} {shape} {spec}")
        return "\n".join(lines)


def _per_device_bytes(x: jax.ShapeDtypeStruct) -> int:
    shard = x.sharding.shard_shape(x.shape)
    return int(np.prod(shard)) * x.dtype.itemsize


def compile_train_step(
    config: ml_collections.ConfigDict, devices: Sequence[jax.Device] | None = None, top: int = 8
) -> CompileReport:
    """Lowers and compiles the train step of `config` on a mesh of `devices` without running it."""
    devices = list(devices or jax.devices())
    model_cfg = models.ModelConfig.from_dict(config.model.to_dict())
    mesh = make_mesh(config.mesh, devices)
    example = models.dummy_batch(model_cfg, config.train.batch_size, *sequence_lengths(config.data))
    program = build_train_program(
        model_cfg, config.train, mesh, resolve_rules(config.mesh.rules), example
    )
    abstract = program.abstract_state
    with jax.set_mesh(mesh):
        compiled = program.train_step.lower(abstract, program.abstract_batch()).compile()
    memory = compiled.memory_analysis()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    leaves = jax.tree_util.tree_leaves_with_path(abstract)
    sized = sorted(
        (
            (jax.tree_util.keystr(path), tuple(x.shape), str(x.sharding.spec), _per_device_bytes(x))
            for path, x in leaves
        ),
        key=lambda row: -row[3],
    )
    return CompileReport(
        devices=len(devices),
        mesh=dict(mesh.shape),
        argument_bytes=int(memory.argument_size_in_bytes),
        output_bytes=int(memory.output_size_in_bytes),
        temp_bytes=int(memory.temp_size_in_bytes),
        alias_bytes=int(memory.alias_size_in_bytes),
        flops_per_step=float(cost.get("flops", 0.0)) if cost else 0.0,
        param_count=sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(abstract.params)),
        state_bytes_per_device=sum(_per_device_bytes(x) for _, x in leaves),
        largest=sized[:top],
    )


def budget_advice(report: CompileReport, hbm_bytes: float) -> str | None:
    """None when the step fits `hbm_bytes` per device, else what is big and what to change."""
    if report.peak_bytes <= hbm_bytes:
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
        "or split the batch (--config.train.microbatches=N)."
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
