"""Greedy decoding and ancestral sampling over a step function with a cache (see step.py).

The loops are pure and traceable; jit them in the caller (the step function
usually closes over parameters, so it is not a jit argument itself).
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from llm.decode import filtering, prompts, repetition
from llm.decode.step import PyTree, TokensToLogits

# Chooses the next token of every row from its logits at the given step.
ChooseFn = Callable[[jax.Array, jax.Array], jax.Array]


class _Extras(NamedTuple):
    """Per-row new-token limits and the repetition remedies (see greedy)."""

    max_decode_lens_B: jax.Array | None
    no_repeat_ngram_size: int
    repetition_penalty: float


def _decode_loop(
    tokens_to_logits: TokensToLogits,
    cache: PyTree,
    prompt_BxP: jax.Array,
    prompt_lengths_B: jax.Array | None,
    max_decode_len: int,
    eos_id: int,
    pad_id: int,
    choose: ChooseFn,
    prefill_len: int,
    limits: "_Extras",
) -> jax.Array:
    prompts.check_decode_args(prompt_BxP, max_decode_len, prefill_len)
    lengths_B = prompts.prompt_lengths_or_default(prompt_BxP, prompt_lengths_B)
    seq_BxT = prompts.init_sequences(prompt_BxP, lengths_B, max_decode_len, pad_id)
    total_len = seq_BxT.shape[1]
    # Exclusive end: each row gets at most its limit (<= max_decode_len) after its prompt.
    end_B = lengths_B + prompts.row_limits(limits.max_decode_lens_B, lengths_B, max_decode_len)

    def cond(state):
        step, _, _, done_B = state
        return (step < total_len - 1) & ~jnp.all(done_B)

    def body(state):
        step, seq_BxT, cache, done_B = state
        token_Bx1 = jax.lax.dynamic_slice_in_dim(seq_BxT, step, 1, axis=1)
        logits_BxV, cache = tokens_to_logits(token_Bx1, cache)
        pos = step + 1
        logits_BxV = repetition.adjust_logits(
            logits_BxV,
            seq_BxT,
            pos,
            no_repeat_ngram_size=limits.no_repeat_ngram_size,
            repetition_penalty=limits.repetition_penalty,
            eos_id=eos_id,
        )
        chosen_B = choose(logits_BxV, step)
        forced_B = pos < lengths_B
        prompt_token_B = jax.lax.dynamic_index_in_dim(seq_BxT, pos, axis=1, keepdims=False)
        next_B = jnp.where(forced_B, prompt_token_B, chosen_B)
        next_B = jnp.where(done_B, pad_id, next_B)
        seq_BxT = jax.lax.dynamic_update_slice_in_dim(seq_BxT, next_B[:, None], pos, axis=1)
        done_B = done_B | (~forced_B & (next_B == eos_id)) | (pos + 1 >= end_B)
        return step + 1, seq_BxT, cache, done_B

    start, cache = prompts.prefill(tokens_to_logits, cache, seq_BxT, prefill_len)
    done_B = jnp.zeros(lengths_B.shape, bool)
    _, seq_BxT, _, _ = jax.lax.while_loop(cond, body, (jnp.int32(start), seq_BxT, cache, done_B))
    return seq_BxT


def greedy(
    tokens_to_logits: TokensToLogits,
    cache: PyTree,
    prompt_BxP: jax.Array,
    *,
    max_decode_len: int,
    eos_id: int,
    pad_id: int = 0,
    prompt_lengths_B: jax.Array | None = None,
    prefill_len: int = 0,
    max_decode_lens_B: jax.Array | None = None,
    no_repeat_ngram_size: int = 0,
    repetition_penalty: float = 1.0,
) -> jax.Array:
    """Argmax decoding; returns [B, P + max_decode_len] tokens: prompt, output, pad after EOS.

    prompt_BxP starts every row with at least one token (BOS for an
    encoder-decoder); rows shorter than P are right-padded and give their
    length in prompt_lengths_B. The cache must hold P + max_decode_len - 1 steps.
    prefill_len > 1 feeds the first prefill_len - 1 tokens in one call (the step
    function must then accept [B, L] tokens, as the flax adapters do); every
    row's prompt must be at least prefill_len long, e.g. min(prompt lengths).
    max_decode_lens_B caps each row's new tokens (each <= max_decode_len; the
    default is max_decode_len for all). no_repeat_ngram_size > 0 never repeats
    an n-gram of the row's history (prompt included; EOS exempt), and
    repetition_penalty != 1 applies CTRL's penalty (llm.decode.repetition).
    """

    def choose(logits_BxV, step):
        return jnp.argmax(logits_BxV, axis=-1).astype(jnp.int32)

    return _decode_loop(
        tokens_to_logits,
        cache,
        prompt_BxP,
        prompt_lengths_B,
        max_decode_len,
        eos_id,
        pad_id,
        choose,
        prefill_len,
        _Extras(max_decode_lens_B, no_repeat_ngram_size, repetition_penalty),
    )


def sample(
    tokens_to_logits: TokensToLogits,
    cache: PyTree,
    prompt_BxP: jax.Array,
    rng: jax.Array,
    *,
    max_decode_len: int,
    eos_id: int,
    temperature: float | jax.Array = 1.0,
    top_k: int = 0,
    top_p: float | None = None,
    pad_id: int = 0,
    prompt_lengths_B: jax.Array | None = None,
    prefill_len: int = 0,
    max_decode_lens_B: jax.Array | None = None,
    no_repeat_ngram_size: int = 0,
    repetition_penalty: float = 1.0,
) -> jax.Array:
    """Ancestral sampling with temperature, top-k and top-p; same output layout as greedy.

    temperature=0 means greedy decoding (argmax, the rng is unused), and so does
    top_k=1. top_k=0 and top_p=None disable those filters. prefill_len, the
    per-row limits and the repetition remedies as in greedy; the remedies
    change the logits before temperature and the filters.
    """

    filtering.check_sampling_args(temperature, top_k, top_p)

    def choose(logits_BxV, step):
        step_rng = jax.random.fold_in(rng, step)
        return filtering.sample_logits(logits_BxV, step_rng, temperature, top_k, top_p)

    return _decode_loop(
        tokens_to_logits,
        cache,
        prompt_BxP,
        prompt_lengths_B,
        max_decode_len,
        eos_id,
        pad_id,
        choose,
        prefill_len,
        _Extras(max_decode_lens_B, no_repeat_ngram_size, repetition_penalty),
    )
