"""Prompts: host-side batching and trimming, and the output buffers every decoding loop uses.

All rows advance in lockstep (the flax cache keeps one scalar index), so a
prompt is consumed token by token: while a row's position is inside its
prompt, the next token is forced from the prompt instead of chosen. Prompts of
different lengths therefore need right padding only and no position shifts.
"""

import warnings
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from llm.decode.step import PyTree, TokensToLogits


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


def row_limits(
    max_decode_lens_B: jax.Array | None, prompt_lengths_B: jax.Array, max_decode_len: int
) -> jax.Array:
    """Each row's new-token limit: max_decode_lens_B clipped to [1, max_decode_len], or all max_decode_len."""
    if max_decode_lens_B is None:
        return jnp.full(prompt_lengths_B.shape, max_decode_len, jnp.int32)
    return jnp.clip(jnp.asarray(max_decode_lens_B, jnp.int32), 1, max_decode_len)


def check_decode_args(prompt_BxP: jax.Array, max_decode_len: int, prefill_len: int = 0) -> None:
    """Fails early on shapes the loops cannot handle."""
    if prompt_BxP.ndim != 2 or prompt_BxP.shape[1] < 1:
        raise ValueError(
            f"prompt must be [batch, prompt_len>=1] (at least a BOS token), got shape {prompt_BxP.shape}"
        )
    if max_decode_len < 1:
        raise ValueError(
            f"max_decode_len must be >= 1 (new tokens per example), got {max_decode_len}"
        )
    if not 0 <= prefill_len <= prompt_BxP.shape[1]:
        raise ValueError(
            f"prefill_len must be in [0, prompt width {prompt_BxP.shape[1]}], got {prefill_len}"
        )


def prefill(
    tokens_to_logits: TokensToLogits, cache: PyTree, seq_BxT: jax.Array, prefill_len: int
) -> tuple[int, PyTree]:
    """Feeds the first prefill_len - 1 tokens in one call; returns the loop's first step and the cache.

    Their logits only predict prompt tokens, which are forced anyway, so they
    are dropped. The last prompt token is left to the loop, whose first step
    then yields the logits of the first free position.
    """
    if prefill_len <= 1:
        return 0, cache
    start = prefill_len - 1
    _, cache = tokens_to_logits(seq_BxT[:, :start], cache)
    return start, cache


def batch_prompts(
    prompts: Sequence[Sequence[int]],
    *,
    pad_id: int = 0,
    max_prompt_len: int | None = None,
    truncate: bool = False,
    keep: str = "end",
) -> tuple[np.ndarray, np.ndarray]:
    """Right-pads token-id lists into (prompt [B, P] int32, lengths [B] int32) for the decode loops.

    An empty prompt is an error (the loops need a first token, e.g. BOS). A
    prompt over max_prompt_len is an error unless truncate=True, which warns
    and keeps its last (keep='end') or first (keep='start') tokens.
    """
    if keep not in ("end", "start"):
        raise ValueError(f"keep must be 'end' or 'start', got {keep!r}")
    if not prompts:
        raise ValueError("no prompts to decode")
    rows = []
    for i, ids in enumerate(prompts):
        ids = [int(t) for t in ids]
        if not ids:
            raise ValueError(f"prompt {i} is empty; start every prompt with at least a BOS token")
        if max_prompt_len is not None and len(ids) > max_prompt_len:
            if not truncate:
                raise ValueError(
                    f"prompt {i} has {len(ids)} tokens, more than max_prompt_len={max_prompt_len}; "
                    "shorten it or pass truncate=True"
                )
            warnings.warn(
                f"prompt {i}: {len(ids)} tokens truncated to {max_prompt_len} (keeping the {keep})",
                stacklevel=2,
            )
            ids = ids[-max_prompt_len:] if keep == "end" else ids[:max_prompt_len]
        rows.append(ids)
    width = max(len(r) for r in rows)
    prompt_BxP = np.full((len(rows), width), pad_id, np.int32)
    for i, ids in enumerate(rows):
        prompt_BxP[i, : len(ids)] = ids
    return prompt_BxP, np.array([len(r) for r in rows], np.int32)


def generated_ids(
    tokens_BxT: np.ndarray, prompt_lengths_B: np.ndarray | int, eos_id: int
) -> list[list[int]]:
    """Host-side: each row's tokens after its prompt, up to (not including) the first EOS."""
    tokens_BxT = np.asarray(tokens_BxT)
    lengths_B = np.broadcast_to(np.asarray(prompt_lengths_B), tokens_BxT.shape[:1])
    out = []
    for row, start in zip(tokens_BxT, lengths_B, strict=True):
        gen = [int(t) for t in row[int(start) :]]
        out.append(gen[: gen.index(eos_id)] if eos_id in gen else gen)
    return out
