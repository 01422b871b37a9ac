"""Output buffers seeded with per-example prompts, shared by every decoding loop.

All rows advance in lockstep (the flax cache keeps one scalar index), so a
prompt is consumed token by token: while a row's position is inside its
prompt, the next token is forced from the prompt instead of chosen. Prompts of
different lengths therefore need right padding only and no position shifts.
"""

import jax
import jax.numpy as jnp


def prompt_lengths_or_default(
    prompt_BxP: jax.Array, prompt_lengths_B: jax.Array | None
) -> jax.Array:
    """Per-example prompt lengths; None means every prompt fills all P columns."""
    if prompt_lengths_B is None:
        return jnp.full(prompt_BxP.shape[:1], prompt_BxP.shape[1], jnp.int32)
    return jnp.asarray(prompt_lengths_B, jnp.int32)


def init_sequences(
    prompt_BxP: jax.Array, prompt_lengths_B: jax.Array, max_decode_len: int, pad_id: int
) -> jax.Array:
    """Buffer [B, P + max_decode_len] holding each prompt followed by padding."""
    batch, prompt_len = prompt_BxP.shape
    in_prompt_BxP = jnp.arange(prompt_len)[None, :] < prompt_lengths_B[:, None]
    prompt_BxP = jnp.where(in_prompt_BxP, prompt_BxP, pad_id).astype(jnp.int32)
    padding_BxT = jnp.full((batch, max_decode_len), pad_id, jnp.int32)
    return jnp.concatenate([prompt_BxP, padding_BxT], axis=1)


def check_decode_args(prompt_BxP: jax.Array, max_decode_len: int) -> None:
    """Fails early on shapes the loops cannot handle."""
    if prompt_BxP.ndim != 2 or prompt_BxP.shape[1] < 1:
        raise ValueError(
            f"prompt must be [batch, prompt_len>=1] (at least a BOS token), got shape {prompt_BxP.shape}"
        )
    if max_decode_len < 1:
        raise ValueError(
            f"max_decode_len must be >= 1 (new tokens per example), got {max_decode_len}"
        )
