"""Pure train and eval steps: (state, batch) in, (state, metrics) out."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import flax
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


def _terms_and_aux(
    params: Any, batch: Batch, dropout_rng: jax.Array, *, model: nn.Module
) -> tuple[dict[str, tuple[jax.Array, jax.Array, jax.Array]], jax.Array, dict[str, jax.Array]]:
    """Training loss terms, the auxiliary loss the model sows ('moe') and its metrics."""
    terms, sown = model.apply(
        {"params": params},
        batch,
        deterministic=False,
        method="loss_terms",
        rngs={"dropout": dropout_rng},
        mutable=["moe"],
    )
    aux, metrics = moe_summary(sown.get("moe", {}))
    return terms, aux, metrics


def moe_summary(sown: Any) -> tuple[jax.Array, dict[str, jax.Array]]:
    """(sum of the layers' weighted aux losses, 'moe/...' metrics) from the 'moe' collection.

    Scalars are means over MoE layers; 'moe/expert_load' is [layers, experts] in layer order.
    """
    by_name: dict[str, list[jax.Array]] = {}
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(sown))
    for path in sorted(flat, key=_natural_key):
        # Sown values are tuples; scanned layers stack them on a leading layer axis.
        for value in flat[path]:
            by_name.setdefault(path[-1], []).append(value)
    if not by_name:
        return jnp.zeros((), jnp.float32), {}
    num_experts = by_name["expert_load"][0].shape[-1]
    metrics = {
        f"moe/{name}": jnp.mean(jnp.concatenate([jnp.ravel(v) for v in values]))
        for name, values in by_name.items()
        if name not in ("aux_loss", "expert_load")
    }
    metrics["moe/expert_load"] = jnp.concatenate(
        [v.reshape(-1, num_experts) for v in by_name["expert_load"]]
    )
    aux = sum(jnp.sum(v) for v in by_name["aux_loss"])
    metrics["moe/aux_loss"] = aux
    return aux, metrics


def _natural_key(path: tuple[str, ...]) -> tuple:
    """Sorts layers_10 after layers_9."""
    return tuple(
        tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", part)) for part in path
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
    Auxiliary losses the model sows into its 'moe' collection (MoE load balancing and
    router z-loss, already weighted) are added to the loss; their values are in the
    metrics as 'moe/...'.
    """
    step_rng = jax.random.fold_in(jax.random.key(seed), state.step)
    totals = _weight_sums(state.params, batch, model=model)

    def loss_fn(params, micro, rng):
        terms, aux, aux_metrics = _terms_and_aux(params, micro, rng, model=model)
        sums = _term_sums(terms, label_smoothing=label_smoothing, z_loss=z_loss)
        loss = sum(sums[f"{n}/loss_sum"] / jnp.maximum(w, 1.0) for n, w in totals.items())
        # Auxiliary losses and their metrics are per-microbatch means: summed over the
        # accumulation they average.
        sums.update({k: v / microbatches for k, v in aux_metrics.items()})
        return loss + aux / microbatches, sums

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
