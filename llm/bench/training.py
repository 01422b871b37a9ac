"""Training-step throughput, MFU and compile time of a model config on synthetic batches."""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Sequence

import jax
import numpy as np

from llm import flops, models
from llm.models.config import ModelConfig
from llm.parallel import batch_sharding, make_mesh, resolve_rules
from llm.train.config import default_train_config
from llm.train.optim import make_optimizer
from llm.train.state import abstract_state, create_sharded_state
from llm.train.step import train_step


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


@dataclasses.dataclass
class _Setup:
    kwargs: dict
    batch: dict[str, np.ndarray]
    step: object
    mesh: object


def _setup(
    cfg: ModelConfig,
    batch_size: int,
    seq_len: int,
    target_len: int | None,
    devices: Sequence[jax.Device],
) -> _Setup:
    mesh = make_mesh({"data": -1, "fsdp": 1, "tensor": 1}, devices)
    rules = resolve_rules("fsdp")
    model = models.build_model(cfg)
    tcfg = default_train_config()
    tcfg.update(steps=1000, warmup_steps=10)
    tx = make_optimizer(tcfg)
    batch = random_batch(cfg, batch_size, seq_len, target_len)
    kwargs = dict(model=model, tx=tx, example_batch=batch, mesh=mesh, rules=rules)
    _, shardings = abstract_state(jax.random.key(0), **kwargs)
    step = jax.jit(
        functools.partial(train_step, model=model, tx=tx, seed=0),
        in_shardings=(shardings, batch_sharding(mesh, rules)),
        out_shardings=(shardings, None),
        donate_argnums=(0,),
    )
    batch = jax.device_put(batch, batch_sharding(mesh, rules))
    return _Setup(kwargs=kwargs, batch=batch, step=step, mesh=mesh)


def compile_seconds(
    cfg: ModelConfig,
    *,
    batch_size: int,
    seq_len: int,
    target_len: int | None = None,
    devices: Sequence[jax.Device] | None = None,
) -> float:
    """Wall time to lower and compile the train step, without running it."""
    s = _setup(cfg, batch_size, seq_len, target_len, devices or jax.devices()[:1])
    abstract, _ = abstract_state(jax.random.key(0), **s.kwargs)
    with jax.set_mesh(s.mesh):
        t0 = time.perf_counter()
        s.step.lower(abstract, s.batch).compile()
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
    devices = list(devices or jax.devices()[:1])
    s = _setup(cfg, batch_size, seq_len, target_len, devices)
    state, _ = create_sharded_state(jax.random.key(0), **s.kwargs)
    with jax.set_mesh(s.mesh):
        t0 = time.perf_counter()
        compiled = s.step.lower(state, s.batch).compile()
        compile_s = time.perf_counter() - t0
        state, metrics = compiled(state, s.batch)
        jax.block_until_ready(metrics)
        t0 = time.perf_counter()
        for _ in range(steps):
            state, metrics = compiled(state, s.batch)
        jax.block_until_ready(metrics)
        step_s = (time.perf_counter() - t0) / steps
    tokens_per_sec = batch_size * (target_len or seq_len) / step_s
    per_token = flops.train_flops_per_token(cfg, seq_len, target_len)
    return TrainBenchmark(
        name=name,
        params=sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(state.params)),
        tokens_per_sec=tokens_per_sec,
        step_seconds=step_s,
        compile_seconds=compile_s,
        flops_per_token=per_token,
        mfu=flops.mfu(tokens_per_sec, per_token, peak_flops_per_device * len(devices)),
    )
