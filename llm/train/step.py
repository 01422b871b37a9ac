"""Pure train and eval steps: (state, batch) in, (state, metrics) out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from llm.train.integrity import all_finite
from llm.train.losses import cross_entropy_sums
from llm.train.state import TrainState

Batch = Mapping[str, jax.Array]


def _terms(
    params: Any,
    batch: Batch,
    dropout_rng: jax.Array | None,
    *,
    model: nn.Module,
    deterministic: bool,
) -> dict[str, tuple[jax.Array, jax.Array, jax.Array]]:
    rngs = {"dropout": dropout_rng} if dropout_rng is not None else {}
    return model.apply(
        {"params": params}, batch, deterministic=deterministic, method="loss_terms", rngs=rngs
    )


def _term_sums(
    terms: Mapping[str, tuple[jax.Array, jax.Array, jax.Array]],
    *,
    label_smoothing: float,
    z_loss: float,
) -> dict[str, jax.Array]:
    sums = {}
    for name, (logits, targets, weights) in terms.items():
        term = cross_entropy_sums(
            logits, targets, weights, label_smoothing=label_smoothing, z_loss=z_loss
        )
        sums.update({f"{name}/{k}": v for k, v in term.items()})
    return sums


def _weight_sums(params: Any, batch: Batch, *, model: nn.Module) -> dict[str, jax.Array]:
    """Total weight per loss term; XLA drops the unused logits, so this costs ~nothing."""
    terms = _terms(params, batch, None, model=model, deterministic=True)
    return {name: jnp.sum(w.astype(jnp.float32)) for name, (_, _, w) in terms.items()}


def _split_microbatches(batch: Batch, microbatches: int) -> Batch:
    """[B, ...] -> [microbatches, B / microbatches, ...] for lax.scan.

    Microbatch i takes rows i, i + m, i + 2m, ...: each device's contiguous shard of the
    batch splits evenly into the microbatches, so no rows move between devices.
    """

    def split(x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0] // microbatches, microbatches, *x.shape[1:])
        return jnp.swapaxes(x, 0, 1)

    return jax.tree_util.tree_map(split, batch)


def train_step(
    state: TrainState,
    batch: Batch,
    *,
    model: nn.Module,
    tx: optax.GradientTransformation,
    seed: int,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    microbatches: int = 1,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimizer update over `microbatches` accumulated slices of the batch.

    The loss is sum over terms of (weighted loss sum / total weight of the whole batch),
    so accumulating per-microbatch gradients gives the full-batch gradient exactly.
    A step whose loss, gradients or updated parameters are not finite changes nothing but
    the counters.
    The dropout key is derived from (seed, step, microbatch) for exact resume.
    """
    step_rng = jax.random.fold_in(jax.random.key(seed), state.step)
    totals = _weight_sums(state.params, batch, model=model)

    def loss_fn(params, micro, rng):
        sums = _term_sums(
            _terms(params, micro, rng, model=model, deterministic=False),
            label_smoothing=label_smoothing,
            z_loss=z_loss,
        )
        loss = sum(sums[f"{n}/loss_sum"] / jnp.maximum(w, 1.0) for n, w in totals.items())
        return loss, sums

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    if microbatches == 1:
        (loss, sums), grads = grad_fn(state.params, batch, step_rng)
    else:

        def accumulate(carry, inputs):
            index, micro = inputs
            (loss_i, sums_i), grads_i = grad_fn(
                state.params, micro, jax.random.fold_in(step_rng, index)
            )
            loss, sums, grads = carry
            add = lambda a, b: a + b  # noqa: E731
            return (
                loss + loss_i,
                jax.tree_util.tree_map(add, sums, sums_i),
                jax.tree_util.tree_map(add, grads, grads_i),
            ), None

        zeros = jax.tree_util.tree_map(jnp.zeros_like, state.params)
        micro_batches = _split_microbatches(batch, microbatches)
        first = jax.tree_util.tree_map(lambda x: x[0], micro_batches)
        sums_shape = jax.eval_shape(lambda: grad_fn(state.params, first, step_rng)[0][1])
        zero_sums = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), sums_shape)
        (loss, sums, grads), _ = jax.lax.scan(
            accumulate,
            (jnp.zeros((), jnp.float32), zero_sums, zeros),
            (jnp.arange(microbatches), micro_batches),
        )

    grad_norm = optax.global_norm(grads)
    updates, new_opt_state = tx.update(grads, state.opt_state, state.params)
    new_params = optax.apply_updates(state.params, updates)
    # Finite gradients can still give NaN/inf parameters (an overflowing learning rate or
    # optimizer state): such an update is skipped too, so no saved state ever holds one.
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & all_finite(new_params)
    keep = lambda new, old: jnp.where(finite, new, old)  # noqa: E731
    new_state = state.replace(
        step=state.step + 1,
        params=jax.tree_util.tree_map(keep, new_params, state.params),
        opt_state=jax.tree_util.tree_map(keep, new_opt_state, state.opt_state),
        nonfinite_in_row=jnp.where(finite, 0, state.nonfinite_in_row + 1),
        nonfinite_total=state.nonfinite_total + (~finite).astype(jnp.int32),
    )
    metrics = {
        "loss": loss,
        "grad_norm": grad_norm,
        "nonfinite_in_row": new_state.nonfinite_in_row,
        "nonfinite_total": new_state.nonfinite_total,
        **sums,
    }
    return new_state, metrics


def eval_step(params: Any, batch: Batch, *, model: nn.Module) -> dict[str, jax.Array]:
    """Sums of NLL, correct predictions and weights per loss term, summed across batches later."""
    terms = _terms(params, batch, None, model=model, deterministic=True)
    return _term_sums(terms, label_smoothing=0.0, z_loss=0.0)
