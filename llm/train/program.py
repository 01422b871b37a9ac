"""The compiled pieces of a training run: model, optimizer, mesh, state shardings, jitted step.

One builder serves the trainer (`llm.train.loop`), ahead-of-time compilation
(`llm.train.aot`) and the benchmarks (`llm.bench.training`), so all three compile
the same program.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding

from llm import models
from llm.parallel import batch_sharding, check_batch_size
from llm.parallel.rules import LogicalRules
from llm.train.optim import make_optimizer
from llm.train.state import TrainState, abstract_state, init_sharded_state
from llm.train.step import train_step


@dataclasses.dataclass
class TrainProgram:
    """Everything a train step needs, built once per run."""

    model_cfg: models.ModelConfig
    model: Any
    tx: optax.GradientTransformation
    mesh: Mesh
    rules: LogicalRules
    batch_sharding: NamedSharding
    example_batch: Mapping[str, np.ndarray]
    rng: jax.Array
    # Shapes (with shardings) and shardings of the TrainState.
    abstract_state: TrainState
    state_shardings: TrainState
    # jit(train_step) with state/batch shardings and the state donated.
    train_step: Callable[..., tuple[TrainState, dict[str, jax.Array]]]

    def init_state(self) -> TrainState:
        """A freshly initialised state, created directly in its shards."""
        return init_sharded_state(self.rng, self.state_shardings, **self._state_kwargs())

    def abstract_batch(self) -> dict[str, jax.ShapeDtypeStruct]:
        """The example batch as sharded shapes (for lowering without data)."""
        return {
            k: jax.ShapeDtypeStruct(np.shape(v), np.asarray(v).dtype, sharding=self.batch_sharding)
            for k, v in self.example_batch.items()
        }

    def _state_kwargs(self) -> dict[str, Any]:
        return dict(
            model=self.model,
            tx=self.tx,
            example_batch=self.example_batch,
            mesh=self.mesh,
            rules=self.rules,
        )


def build_train_program(
    model_cfg: models.ModelConfig,
    train_cfg: ml_collections.ConfigDict,
    mesh: Mesh,
    rules: LogicalRules,
    example_batch: Mapping[str, np.ndarray],
) -> TrainProgram:
    """Builds model, optimizer, state shardings and the jitted train step for a mesh."""
    check_batch_size(train_cfg.batch_size, mesh, rules)
    model = models.build_model(model_cfg)
    tx = make_optimizer(train_cfg)
    rng = jax.random.key(train_cfg.seed)
    abstract, shardings = abstract_state(
        rng, model=model, tx=tx, example_batch=example_batch, mesh=mesh, rules=rules
    )
    data_sharding = batch_sharding(mesh, rules)
    step = jax.jit(
        functools.partial(
            train_step,
            model=model,
            tx=tx,
            seed=train_cfg.seed,
            label_smoothing=train_cfg.label_smoothing,
            z_loss=train_cfg.z_loss,
            microbatches=train_cfg.microbatches,
        ),
        in_shardings=(shardings, data_sharding),
        out_shardings=(shardings, None),
        donate_argnums=(0,),
    )
    return TrainProgram(
        model_cfg=model_cfg,
        model=model,
        tx=tx,
        mesh=mesh,
        rules=rules,
        batch_sharding=data_sharding,
        example_batch=example_batch,
        rng=rng,
        abstract_state=abstract,
        state_shardings=shardings,
        train_step=step,
    )
