"""Optimizers and learning-rate schedules, built from optax pieces by config."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

from llm.errors import ConfigError


def make_schedule(cfg: ml_collections.ConfigDict) -> optax.Schedule:
    """Learning-rate schedule named by `cfg.schedule` (cosine, linear, rsqrt, wsd, constant)."""
    peak, warmup, steps = cfg.learning_rate, cfg.warmup_steps, cfg.steps
    # warmup_steps > steps is refused for every schedule when a config loads
    # (llm.config_checks), so that all schedules treat it alike.
    if warmup < 0:
        raise ConfigError(f"config.train.warmup_steps={warmup} must be >= 0.")
    if cfg.schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(
            init_value=0.0,
            peak_value=peak,
            warmup_steps=warmup,
            decay_steps=max(steps, warmup + 1),
            end_value=peak * cfg.end_lr_factor,
        )
    if cfg.schedule == "constant":
        return optax.join_schedules(
            [optax.linear_schedule(0.0, peak, max(warmup, 1)), optax.constant_schedule(peak)],
            [warmup],
        )
    if cfg.schedule == "linear":
        # BERT: linear warmup, then linear decay to end_lr_factor * peak at `steps`.
        return optax.join_schedules(
            [
                optax.linear_schedule(0.0, peak, max(warmup, 1)),
                optax.linear_schedule(peak, peak * cfg.end_lr_factor, max(steps - warmup, 1)),
            ],
            [warmup],
        )
    if cfg.schedule == "rsqrt":
        # AIAYN 5.3: lr = peak * min(step/warmup, sqrt(warmup/step)); peak reached at warmup.
        warmup = max(warmup, 1)
        return optax.join_schedules(
            [
                optax.linear_schedule(0.0, peak, warmup),
                lambda count: peak * jax.lax.rsqrt((count + warmup) / warmup),
            ],
            [warmup],
        )
    if cfg.schedule == "wsd":
        decay = max(int(steps * cfg.decay_fraction), 1)
        stable = max(steps - warmup - decay, 0)
        return optax.join_schedules(
            [
                optax.linear_schedule(0.0, peak, max(warmup, 1)),
                optax.constant_schedule(peak),
                optax.linear_schedule(peak, peak * cfg.end_lr_factor, decay),
            ],
            [warmup, warmup + stable],
        )
    raise ConfigError(
        f"config.train.schedule={cfg.schedule!r} is unknown; use cosine, linear, rsqrt, wsd or constant."
    )


def decay_mask(params: Any, *, decay_embeddings: bool = True) -> Any:
    """True for parameters that get weight decay: matrices, not norms, biases or scalars.

    With decay_embeddings=False, tables under a module whose name contains 'embed'
    (token, position and token-type embeddings) are excluded too.
    """

    def decays(path: tuple, p: Any) -> bool:
        if p.ndim < 2:
            return False
        names = [str(getattr(k, "key", k)) for k in path]
        return decay_embeddings or not any("embed" in n for n in names)

    return jax.tree_util.tree_map_with_path(decays, params)


def scale_by_parameter(multiplier: Callable[[tuple, Any], float]) -> optax.GradientTransformation:
    """Multiplies each parameter's update by multiplier(path, param), a constant per parameter.

    The per-parameter learning rates of muP (llm.models.mup.lr_multiplier): the chain's
    last stage, so that the whole update (AdamW's decoupled decay included) is scaled.
    """

    def update(updates, state, params=None):
        del params
        scaled = jax.tree_util.tree_map_with_path(
            lambda path, u: u if (m := multiplier(path, u)) == 1.0 else u * jnp.asarray(m, u.dtype),
            updates,
        )
        return scaled, state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def make_optimizer(
    cfg: ml_collections.ConfigDict, lr_multiplier: Callable[[tuple, Any], float] | None = None
) -> optax.GradientTransformation:
    """Gradient clipping, the optimizer named by `cfg.optimizer`, then per-parameter rates.

    `lr_multiplier(path, param)` scales each parameter's update (muP's hidden matrices:
    1/width multiplier); None keeps one learning rate for all.
    """
    schedule = make_schedule(cfg)
    if cfg.optimizer == "adamw":
        opt = optax.adamw(
            schedule,
            b1=cfg.b1,
            b2=cfg.b2,
            eps=cfg.eps,
            weight_decay=cfg.weight_decay,
            mask=functools.partial(decay_mask, decay_embeddings=cfg.decay_embeddings),
        )
    elif cfg.optimizer == "adafactor":
        opt = optax.adafactor(
            schedule,
            weight_decay_rate=cfg.weight_decay or None,
            weight_decay_mask=functools.partial(decay_mask, decay_embeddings=cfg.decay_embeddings),
        )
    elif cfg.optimizer == "sgd":
        opt = optax.sgd(schedule, momentum=cfg.b1)
    else:
        raise ConfigError(
            f"config.train.optimizer={cfg.optimizer!r} is unknown; use adamw, adafactor or sgd."
        )
    chain = [opt]
    if cfg.grad_clip_norm and cfg.grad_clip_norm > 0:
        chain.insert(0, optax.clip_by_global_norm(cfg.grad_clip_norm))
    if lr_multiplier is not None:
        chain.append(scale_by_parameter(lr_multiplier))
    return optax.chain(*chain)
