"""Pure train and eval steps: (state, batch) in, (state, metrics) out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from llm.train.losses import cross_entropy_sums
from llm.train.state import TrainState


def _loss_and_sums(
    params: Any,
    batch: Mapping[str, jax.Array],
    dropout_rng: jax.Array | None,
    *,
    model: nn.Module,
    label_smoothing: float,
    z_loss: float,
    deterministic: bool,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    rngs = {"dropout": dropout_rng} if dropout_rng is not None else {}
    terms = model.apply(
        {"params": params}, batch, deterministic=deterministic, method="loss_terms", rngs=rngs
    )
    total = jnp.zeros((), jnp.float32)
    sums = {}
    for name, (logits, targets, weights) in terms.items():
        term = cross_entropy_sums(
            logits, targets, weights, label_smoothing=label_smoothing, z_loss=z_loss
        )
        total = total + term["loss_sum"] / jnp.maximum(term["weight_sum"], 1.0)
        sums.update({f"{name}/{k}": v for k, v in term.items()})
    return total, sums


def train_step(
    state: TrainState,
    batch: Mapping[str, jax.Array],
    *,
    model: nn.Module,
    tx: optax.GradientTransformation,
    seed: int,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimizer update; the dropout key is derived from (seed, step) for exact resume."""
    dropout_rng = jax.random.fold_in(jax.random.key(seed), state.step)
    grad_fn = jax.value_and_grad(_loss_and_sums, has_aux=True)
    (loss, sums), grads = grad_fn(
        state.params,
        batch,
        dropout_rng,
        model=model,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        deterministic=False,
    )
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"loss": loss, "grad_norm": optax.global_norm(grads), **sums}
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics


def eval_step(
    params: Any,
    batch: Mapping[str, jax.Array],
    *,
    model: nn.Module,
) -> dict[str, jax.Array]:
    """Sums of NLL, correct predictions and weights per loss term, summed across batches later."""
    _, sums = _loss_and_sums(
        params, batch, None, model=model, label_smoothing=0.0, z_loss=0.0, deterministic=True
    )
    return sums
