"""The compiled pieces of a training run: model, optimizer, mesh, state shardings, jitted steps.

`build_train_program(config)` is the one path from an experiment config to a program:
the trainer (`llm.train.loop`), ahead-of-time compilation (`llm.train.aot`), the planner
(`llm.train.plan`), checkpoint import (`llm.convert.workdir`) and the benchmarks
(`llm.bench.training`) all call it, so all of them compile the same step.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding

from llm import models
from llm.data.config import sequence_lengths
from llm.errors import ConfigError
from llm.models import mup
from llm.parallel import batch_sharding, check_batch_size, make_mesh, resolve_rules
from llm.parallel.rules import LogicalRules
from llm.train.optim import make_optimizer
from llm.train.state import TrainState, abstract_state, init_sharded_state
from llm.train.step import eval_step, train_step
from llm.train.trained import TrainedModel


@dataclasses.dataclass
class TrainProgram:
    """Everything a train step needs, built once per run."""

    # The experiment config the program was built from.
    config: ml_collections.ConfigDict
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
    # jit(eval_step): (params, batch) -> summed NLL/correct/weights per loss term.
    eval_step: Callable[..., dict[str, jax.Array]]

    def init_state(self) -> TrainState:
        """A freshly initialised state, created directly in its shards."""
        return init_sharded_state(self.rng, self.state_shardings, **self._state_kwargs())

    def abstract_batch(self) -> dict[str, jax.ShapeDtypeStruct]:
        """The example batch as sharded shapes (for lowering without data)."""
        return {
            k: jax.ShapeDtypeStruct(np.shape(v), np.asarray(v).dtype, sharding=self.batch_sharding)
            for k, v in self.example_batch.items()
        }

    def trained(self, params: Any) -> TrainedModel:
        """`params` of this program's model on its mesh, ready to decode or evaluate."""
        return TrainedModel(
            config=self.config,
            model_cfg=self.model_cfg,
            model=self.model,
            params=params,
            mesh=self.mesh,
            rules=self.rules,
        )

    def lower_train_step(self) -> jax.stages.Lowered:
        """The train step lowered on abstract state and batch (nothing is allocated)."""
        with jax.set_mesh(self.mesh):
            return self.train_step.lower(self.abstract_state, self.abstract_batch())

    def _state_kwargs(self) -> dict[str, Any]:
        return dict(
            model=self.model,
            tx=self.tx,
            example_batch=self.example_batch,
            mesh=self.mesh,
            rules=self.rules,
        )


def under_rules(fn: Callable[..., Any], rules: LogicalRules) -> Callable[..., Any]:
    """`fn` traced with the logical-axis rules in scope.

    Flax's `with_logical_constraint` is a silent no-op without rules in scope. A step
    traced without them keeps none of the models' activation constraints, and XLA then
    propagates the parameters' FSDP sharding into the activations: the whole global
    batch ends up on every device (16.7x the activation memory of a lean step on a
    64-chip GPT-3 6.7B run, issue #12).
    """

    @functools.wraps(fn)
    def traced(*args: Any, **kwargs: Any) -> Any:
        with nn.logical_axis_rules(rules):
            return fn(*args, **kwargs)

    return traced


def check_microbatches(train_cfg: ml_collections.ConfigDict) -> None:
    """Raises when `train.microbatches` does not split the per-process batch."""
    per_process = train_cfg.batch_size // jax.process_count()
    if train_cfg.microbatches < 1 or per_process % train_cfg.microbatches:
        raise ConfigError(
            f"config.train.microbatches={train_cfg.microbatches} must be >= 1 and divide the "
            f"per-process batch {per_process}."
        )


def model_and_mesh(
    config: ml_collections.ConfigDict, devices: Sequence[jax.Device] | None = None
) -> tuple[models.ModelConfig, Any, Mesh, LogicalRules]:
    """The config's model (config and module), mesh and logical-axis rules.

    The part of a program that restoring params for inference needs too (there with no
    optimizer and no batch: llm.train.restore).
    """
    model_cfg = models.ModelConfig.from_dict(config.model.to_dict())
    mesh = make_mesh(config.mesh, devices)
    return model_cfg, models.build_model(model_cfg), mesh, resolve_rules(config.mesh.rules)


def build_train_program(
    config: ml_collections.ConfigDict,
    *,
    devices: Sequence[jax.Device] | None = None,
    example_batch: Mapping[str, np.ndarray] | None = None,
) -> TrainProgram:
    """Model, mesh, rules, optimizer, state shardings and the jitted steps of `config`.

    `devices` default to all devices (a TPU topology's devices compile for that TPU);
    `example_batch` defaults to a zero batch of the config's global batch and lengths.
    """
    model_cfg, model, mesh, rules = model_and_mesh(config, devices)
    train_cfg = config.train
    check_batch_size(train_cfg.batch_size, mesh, rules)
    check_microbatches(train_cfg)
    if example_batch is None:
        example_batch = models.dummy_batch(
            model_cfg, train_cfg.batch_size, *sequence_lengths(config.data)
        )
    # muP's per-parameter learning rates (hidden matrices x 1/width multiplier).
    lr_multiplier = (
        functools.partial(mup.lr_multiplier, cfg=model_cfg) if mup.enabled(model_cfg) else None
    )
    tx = make_optimizer(train_cfg, lr_multiplier)
    rng = jax.random.key(train_cfg.seed)
    abstract, shardings = abstract_state(
        rng, model=model, tx=tx, example_batch=example_batch, mesh=mesh, rules=rules
    )
    data_sharding = batch_sharding(mesh, rules)
    step = jax.jit(
        under_rules(
            functools.partial(
                train_step,
                model=model,
                tx=tx,
                seed=train_cfg.seed,
                label_smoothing=train_cfg.label_smoothing,
                z_loss=train_cfg.z_loss,
                microbatches=train_cfg.microbatches,
            ),
            rules,
        ),
        in_shardings=(shardings, data_sharding),
        out_shardings=(shardings, None),
        donate_argnums=(0,),
    )
    evaluate = jax.jit(
        under_rules(functools.partial(eval_step, model=model), rules),
        in_shardings=(shardings.params, data_sharding),
    )
    return TrainProgram(
        config=config,
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
        eval_step=evaluate,
    )
