"""Train state and its sharded initialisation (eval_shape -> shardings -> jit(init))."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import numpy as np
import optax
from jax.sharding import Mesh

from llm.parallel import check_divisible, logical_to_shardings
from llm.parallel.rules import LogicalRules


class TrainState(flax.struct.PyTreeNode):
    """Step counter, parameters, optimizer state and the count of skipped non-finite steps."""

    step: jax.Array
    params: Any
    opt_state: Any
    # Steps whose loss or gradients were NaN/inf (skipped): in a row, and in total.
    nonfinite_in_row: jax.Array
    nonfinite_total: jax.Array


def _init_boxed(
    rng: jax.Array,
    *,
    model: nn.Module,
    tx: optax.GradientTransformation,
    example_batch: Mapping[str, np.ndarray],
) -> TrainState:
    params_rng, dropout_rng = jax.random.split(rng)
    variables = model.init(
        {"params": params_rng, "dropout": dropout_rng},
        example_batch,
        deterministic=True,
        method="loss_terms",
    )
    params = variables["params"]
    zero = jax.numpy.zeros((), jax.numpy.int32)
    return TrainState(
        step=zero,
        params=params,
        opt_state=_drop_mismatched_boxes(tx.init(params)),
        nonfinite_in_row=zero,
        nonfinite_total=zero,
    )


def _drop_mismatched_boxes(opt_state: Any) -> Any:
    """Unboxes optimizer-state leaves whose rank differs from their parameter's axis names.

    Optimizers map over boxed parameters, so every state leaf inherits its parameter's
    logical names; Adafactor's factored second moments (row/column vectors of a matrix)
    have a lower rank, so their names would not fit. They are small: replicate them.
    """

    def fix(x: Any) -> Any:
        if isinstance(x, nn.Partitioned) and np.ndim(x.value) != len(x.names):
            return x.value
        return x

    return jax.tree_util.tree_map(fix, opt_state, is_leaf=lambda x: isinstance(x, nn.Partitioned))


def _strip_boxes(tree: Any) -> Any:
    """Unboxes without sharding constraints (which need traced arrays, not shapes)."""
    return jax.tree_util.tree_map(
        lambda x: x.unbox(apply_constraint=False) if isinstance(x, nn.meta.AxisMetadata) else x,
        tree,
        is_leaf=lambda x: isinstance(x, nn.meta.AxisMetadata),
    )


def _unboxed(init: Callable[[jax.Array], TrainState], rng: jax.Array) -> TrainState:
    return nn.meta.unbox(init(rng))


def abstract_state(
    rng: jax.Array,
    *,
    model: nn.Module,
    tx: optax.GradientTransformation,
    example_batch: Mapping[str, np.ndarray],
    mesh: Mesh,
    rules: LogicalRules,
) -> tuple[TrainState, TrainState]:
    """Shapes and shardings of the state without allocating it (for restore and AOT)."""
    init = functools.partial(_init_boxed, model=model, tx=tx, example_batch=example_batch)
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        abstract = jax.eval_shape(init, rng)
        logical_specs = nn.get_partition_spec(abstract)
        shardings = logical_to_shardings(logical_specs, mesh, rules)
    abstract_unboxed = _strip_boxes(abstract)
    check_divisible(abstract_unboxed, shardings, logical_specs)
    shaped = jax.tree_util.tree_map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract_unboxed, shardings
    )
    return shaped, shardings


def init_sharded_state(
    rng: jax.Array,
    shardings: TrainState,
    *,
    model: nn.Module,
    tx: optax.GradientTransformation,
    example_batch: Mapping[str, np.ndarray],
    mesh: Mesh,
    rules: LogicalRules,
) -> TrainState:
    """The state created directly in its shards (`shardings` from abstract_state)."""
    init = functools.partial(_init_boxed, model=model, tx=tx, example_batch=example_batch)
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        return jax.jit(functools.partial(_unboxed, init), out_shardings=shardings)(rng)


def create_sharded_state(
    rng: jax.Array,
    *,
    model: nn.Module,
    tx: optax.GradientTransformation,
    example_batch: Mapping[str, np.ndarray],
    mesh: Mesh,
    rules: LogicalRules,
) -> tuple[TrainState, TrainState]:
    """Returns (state, state_shardings), with the state created directly in its shards."""
    kwargs = dict(model=model, tx=tx, example_batch=example_batch, mesh=mesh, rules=rules)
    _, shardings = abstract_state(rng, **kwargs)
    return init_sharded_state(rng, shardings, **kwargs), shardings
