"""Shared helpers for model tests: tiny configs and embedding-gradient probes."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from llm.models import ModelConfig, build_model, init_variables
from llm.models.layers import Embed


def tiny(**overrides) -> ModelConfig:
    """A tiny config (fast on CPU); overrides replace fields."""
    base = dict(
        family="decoder",
        vocab_size=37,
        d_model=16,
        num_heads=4,
        d_ff=32,
        num_layers=1,
        max_len=16,
    )
    base.update(overrides)
    return ModelConfig(**base)


def with_embedding_delta(fn, delta_BxLxD: jax.Array, module_name: str = "token_embed"):
    """Runs fn() with delta added to the output of the named token-embedding lookup."""

    def interceptor(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if (
            isinstance(context.module, Embed)
            and context.method_name == "__call__"
            and context.module.name == module_name
            and out.shape == delta_BxLxD.shape
        ):
            out = out + delta_BxLxD.astype(out.dtype)
        return out

    with nn.intercept_methods(interceptor):
        return fn()


def logit_input_jacobian(apply_fn, shape_BxLxD: tuple[int, ...], row: int = 0) -> jax.Array:
    """|d (logits[row, t] . w) / d embedding[row, s]| summed over D: [T, S]."""
    w = jax.random.normal(jax.random.key(7), (1000,))

    def f(delta):
        logits_BxTxV = with_embedding_delta(apply_fn, delta)
        v = logits_BxTxV.shape[-1]
        return logits_BxTxV[row] @ w[:v]

    jac_TxBxSxD = jax.jacrev(f)(jnp.zeros(shape_BxLxD, jnp.float32))
    return jnp.abs(jac_TxBxSxD[:, row]).sum(-1)


def init(cfg: ModelConfig, seed: int = 0):
    """(model, variables), initialised through loss_terms.

    Eager on purpose: jitting init recompiles every RNG initializer per config
    (seconds of CPU each), while eager ops hit a compile cache shared by all tests.
    """
    variables = init_variables(cfg, jax.random.key(seed))
    return build_model(cfg), variables


def japply(model: nn.Module, variables, *args, **kwargs):
    """model.apply, eager (see init: cheaper than a compile per call for tiny models)."""
    return model.apply(variables, *args, **kwargs)


def zero_cache(model: nn.Module, *example_args, **example_kwargs):
    """Zero 'cache' collection sized by an init with full-length inputs and decode=True."""
    shapes = jax.eval_shape(
        lambda: model.init(jax.random.key(0), *example_args, decode=True, **example_kwargs)
    )["cache"]
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
