"""Step functions `tokens_to_logits(token_ids_Bx1, cache) -> (logits_BxV, cache)` for flax models.

Calling convention assumed of the models (docs/contracts.md):
- decoder: `model.apply({'params': p, 'cache': c}, tokens_BxL, decode=True,
  mutable=['cache'])` returns logits [B, L, V];
- encoder-decoder: `model.apply({'params': p}, encoder_inputs_BxS,
  method=encode_method)` returns the encoder output (any pytree with a leading
  batch axis), and `model.apply({'params': p, 'cache': c}, encoded,
  encoder_inputs_BxS, decoder_tokens_BxL, decode=True, mutable=['cache'],
  method=decode_method)` returns decoder logits [B, L, V].
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from llm.decode.step import PyTree, TokensToLogits


def init_cache(model: nn.Module, *example_args: Any, **example_kwargs: Any) -> PyTree:
    """Zero 'cache' collection for `model(*example_args, decode=True)`, without running the model.

    The example arguments fix the shapes: a decoder needs tokens [B, max_len]
    with max_len >= prompt_len + max_decode_len - 1.
    """
    variables = jax.eval_shape(
        lambda: model.init(jax.random.key(0), *example_args, decode=True, **example_kwargs)
    )
    if "cache" not in variables:
        raise ValueError(f"{type(model).__name__} created no 'cache' collection with decode=True")
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), variables["cache"])


def _last_logits(logits_BxLxV: jax.Array) -> jax.Array:
    return logits_BxLxV[:, -1, :].astype(jnp.float32)


def decoder_tokens_to_logits(
    model: nn.Module, params: PyTree, **apply_kwargs: Any
) -> TokensToLogits:
    """Step function for a decoder-only model with a flax 'cache' collection."""

    def tokens_to_logits(token_ids_Bx1: jax.Array, cache: PyTree) -> tuple[jax.Array, PyTree]:
        logits_BxLxV, variables = model.apply(
            {"params": params, "cache": cache},
            token_ids_Bx1,
            decode=True,
            mutable=["cache"],
            **apply_kwargs,
        )
        return _last_logits(logits_BxLxV), variables["cache"]

    return tokens_to_logits


def _repeat_rows(tree: PyTree, rows: int) -> PyTree:
    # Beam search calls the step with B*K rows (example-major); the encoder
    # ran on B rows, so each example's encoding is repeated K times.
    def repeat(leaf):
        if leaf.shape[0] == rows:
            return leaf
        return jnp.repeat(leaf, rows // leaf.shape[0], axis=0)

    return jax.tree.map(repeat, tree)


def encoder_decoder_tokens_to_logits(
    model: nn.Module,
    params: PyTree,
    encoder_inputs_BxS: jax.Array,
    *,
    encode_method: str = "encode",
    decode_method: str = "decode",
    **apply_kwargs: Any,
) -> TokensToLogits:
    """Encodes once, then returns a step function that decodes with the cache.

    The step function accepts B or B*K rows, repeating the encoder output for beams.
    """
    encoded = model.apply({"params": params}, encoder_inputs_BxS, method=encode_method)

    def tokens_to_logits(token_ids_Nx1: jax.Array, cache: PyTree) -> tuple[jax.Array, PyTree]:
        rows = token_ids_Nx1.shape[0]
        logits_NxLxV, variables = model.apply(
            {"params": params, "cache": cache},
            _repeat_rows(encoded, rows),
            _repeat_rows(encoder_inputs_BxS, rows),
            token_ids_Nx1,
            decode=True,
            mutable=["cache"],
            method=decode_method,
            **apply_kwargs,
        )
        return _last_logits(logits_NxLxV), variables["cache"]

    return tokens_to_logits


def decoder_recompute_tokens_to_logits(
    model: nn.Module, params: PyTree, batch_size: int, max_len: int, **apply_kwargs: Any
) -> tuple[TokensToLogits, PyTree]:
    """Cache-free step function (the baseline the KV cache is measured against) and its start state.

    Its "cache" is the token buffer [B, max_len] and a scalar index; every
    step reruns the full causal forward pass over the buffer, so later (zero)
    slots cannot affect the logits read at the current position.
    """
    state = {
        "tokens": jnp.zeros((batch_size, max_len), jnp.int32),
        "index": jnp.zeros((), jnp.int32),
    }

    def tokens_to_logits(token_ids_BxL: jax.Array, state: PyTree) -> tuple[jax.Array, PyTree]:
        length = token_ids_BxL.shape[1]
        tokens_BxT = jax.lax.dynamic_update_slice_in_dim(
            state["tokens"], token_ids_BxL.astype(jnp.int32), state["index"], axis=1
        )
        logits_BxTxV = model.apply({"params": params}, tokens_BxT, **apply_kwargs)
        last = state["index"] + length - 1
        logits_BxV = jax.lax.dynamic_index_in_dim(logits_BxTxV, last, axis=1, keepdims=False)
        return logits_BxV.astype(jnp.float32), {"tokens": tokens_BxT, "index": last + 1}

    return tokens_to_logits, state
