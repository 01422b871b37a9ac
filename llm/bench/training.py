"""Training-step throughput, MFU and compile time of a model config on synthetic batches."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import jax
import ml_collections
import numpy as np

from llm import flops, models
from llm.data.config import default_data_config
from llm.models.config import ModelConfig
from llm.parallel.config import default_mesh_config
from llm.train.config import default_train_config
from llm.train.program import TrainProgram, build_train_program


@dataclasses.dataclass
class TrainBenchmark:
    """One measured configuration."""

    name: str
    params: int
    tokens_per_sec: float
    step_seconds: float
    compile_seconds: float
    flops_per_token: float
    mfu: float


def random_batch(
    cfg: ModelConfig, batch_size: int, seq_len: int, target_len: int | None, seed: int = 0
) -> dict[str, np.ndarray]:
    """A batch of random tokens in the family's format (one document per row)."""
    rng = np.random.default_rng(seed)
    batch = {}
    for key, value in models.dummy_batch(cfg, batch_size, seq_len, target_len).items():
        value = np.asarray(value)
        if key in ("inputs", "targets", "encoder_inputs", "decoder_inputs"):
            value = rng.integers(4, cfg.vocab_size, value.shape, dtype=np.int32)
        batch[key] = value
    return batch


def bench_config(
    cfg: ModelConfig, batch_size: int, seq_len: int, target_len: int | None
) -> ml_collections.ConfigDict:
    """An experiment config training `cfg` with AdamW, data parallel, at the given shapes."""
    config = ml_collections.ConfigDict()
    config.model = cfg.to_dict()
    config.data = default_data_config()
    config.data.task = {"decoder": "lm", "encoder": "mlm", "encoder_decoder": "seq2seq"}[cfg.family]
    config.data.seq_len = config.data.inputs_len = seq_len
    config.data.targets_len = target_len or seq_len
    config.train = default_train_config()
    config.train.update(steps=1000, warmup_steps=10, batch_size=batch_size)
    config.mesh = default_mesh_config("fsdp")
    return config


def _program(
    cfg: ModelConfig,
    batch_size: int,
    seq_len: int,
    target_len: int | None,
    devices: Sequence[jax.Device],
) -> tuple[TrainProgram, dict[str, jax.Array]]:
    """The trainer's program for `cfg` (AdamW, data parallel) and a random batch on its mesh."""
    batch = random_batch(cfg, batch_size, seq_len, target_len)
    config = bench_config(cfg, batch_size, seq_len, target_len)
    program = build_train_program(config, devices=devices, example_batch=batch)
    return program, jax.device_put(batch, program.batch_sharding)


def compile_seconds(
    cfg: ModelConfig,
    *,
    batch_size: int,
    seq_len: int,
    target_len: int | None = None,
    devices: Sequence[jax.Device] | None = None,
) -> float:
    """Wall time to lower and compile the train step, without running it."""
    program, batch = _program(cfg, batch_size, seq_len, target_len, devices or jax.devices()[:1])
    with jax.set_mesh(program.mesh):
        t0 = time.perf_counter()
        program.train_step.lower(program.abstract_state, batch).compile()
        return time.perf_counter() - t0


def benchmark_training(
    name: str,
    cfg: ModelConfig,
    *,
    batch_size: int,
    seq_len: int,
    target_len: int | None = None,
    steps: int = 5,
    peak_flops_per_device: float,
    devices: Sequence[jax.Device] | None = None,
) -> TrainBenchmark:
    """Compiles, warms up and times `steps` AdamW train steps on one synthetic batch."""
    result, _ = measure_training(
        name,
        cfg,
        batch_size=batch_size,
        seq_len=seq_len,
        target_len=target_len,
        steps=steps,
        peak_flops_per_device=peak_flops_per_device,
        devices=devices,
    )
    return result


def measure_training(
    name: str,
    cfg: ModelConfig,
    *,
    batch_size: int,
    seq_len: int,
    target_len: int | None = None,
    steps: int = 5,
    peak_flops_per_device: float,
    devices: Sequence[jax.Device] | None = None,
) -> tuple[TrainBenchmark, dict[str, float]]:
    """`benchmark_training`, plus the scalar metrics of the warm-up step (the initial params)."""
    devices = list(devices or jax.devices()[:1])
    program, batch = _program(cfg, batch_size, seq_len, target_len, devices)
    state = program.init_state()
    with jax.set_mesh(program.mesh):
        t0 = time.perf_counter()
        compiled = program.train_step.lower(state, batch).compile()
        compile_s = time.perf_counter() - t0
        state, metrics = compiled(state, batch)
        jax.block_until_ready(metrics)
        first_metrics = {k: float(v) for k, v in metrics.items() if np.ndim(v) == 0}
        t0 = time.perf_counter()
        for _ in range(steps):
            state, metrics = compiled(state, batch)
        jax.block_until_ready(metrics)
        step_s = (time.perf_counter() - t0) / steps
    tokens_per_sec = batch_size * (target_len or seq_len) / step_s
    per_token = flops.train_flops_per_token(cfg, seq_len, target_len)
    result = TrainBenchmark(
        name=name,
        params=sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(state.params)),
        tokens_per_sec=tokens_per_sec,
        step_seconds=step_s,
        compile_seconds=compile_s,
        flops_per_token=per_token,
        mfu=flops.mfu(tokens_per_sec, per_token, peak_flops_per_device * len(devices)),
    )
    return result, first_metrics
