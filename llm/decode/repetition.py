"""Remedies for repeated phrases: no-repeat n-gram blocking and the CTRL repetition penalty.

Both read a row's history in the buffer the decoding loops fill: positions < pos
of seq_NxT (prompt, or BOS, then the tokens chosen so far), where pos is the
position the next token goes to. They are traceable with pos a tracer and n,
penalty Python numbers; off (n=0, penalty=1) they add nothing to the graph.
"""

import jax
import jax.numpy as jnp

from llm.errors import ConfigError

NEG_INF = -jnp.inf


def check_repetition_args(no_repeat_ngram_size: int, repetition_penalty: float) -> None:
    """Fails early on settings out of range, naming them."""
    if not isinstance(no_repeat_ngram_size, int) or no_repeat_ngram_size < 0:
        raise ConfigError(
            f"no_repeat_ngram_size={no_repeat_ngram_size!r} must be an int >= 0 (0 = off)."
        )
    if not repetition_penalty > 0:
        raise ConfigError(
            f"repetition_penalty={repetition_penalty} must be > 0 (1 = off; CTRL used 1.2)."
        )


def _seen_NxV(seq_NxT: jax.Array, pos: jax.Array, vocab: int) -> jax.Array:
    """Which tokens occur in each row's history."""
    rows, length = seq_NxT.shape
    in_history_NxT = (jnp.arange(length)[None, :] < pos).astype(jnp.int32)
    seen_NxV = jnp.zeros((rows, vocab), jnp.int32)
    seen_NxV = seen_NxV.at[jnp.arange(rows)[:, None], seq_NxT].max(in_history_NxT)
    return seen_NxV > 0


def banned_ngram_tokens(seq_NxT: jax.Array, pos: jax.Array, n: int, vocab: int) -> jax.Array:
    """[N, V] True for tokens that, put at pos, would repeat an n-gram of the history.

    The n-gram ending at pos is its last n - 1 history tokens plus the new
    one; it repeats if those n - 1 tokens occur earlier followed by that token.
    n = 1 bans every token of the history.
    """
    if n == 1:
        return _seen_NxV(seq_NxT, pos, vocab)
    rows, length = seq_NxT.shape
    if length < n:
        return jnp.zeros((rows, vocab), bool)
    starts_S = jnp.arange(length - n + 1)
    # The n - 1 tokens before pos; early on (pos < n - 1) the slice is clamped,
    # but then no start is early enough to match.
    context_NxC = jax.lax.dynamic_slice_in_dim(seq_NxT, pos - n + 1, n - 1, axis=1)
    # An earlier n-gram seq[i:i+n] lies wholly in the history: i + n - 1 < pos.
    match_NxS = jnp.broadcast_to(starts_S[None, :] <= pos - n, (rows, starts_S.size))
    for j in range(n - 1):
        match_NxS = match_NxS & (seq_NxT[:, starts_S + j] == context_NxC[:, j : j + 1])
    next_NxS = seq_NxT[:, starts_S + n - 1]
    banned_NxV = jnp.zeros((rows, vocab), jnp.int32)
    banned_NxV = banned_NxV.at[jnp.arange(rows)[:, None], next_NxS].max(match_NxS.astype(jnp.int32))
    return banned_NxV > 0


def penalize_repeats(
    logits_NxV: jax.Array, seq_NxT: jax.Array, pos: jax.Array, penalty: float
) -> jax.Array:
    """CTRL's repetition penalty (Keskar et al. 2019) on the tokens of the history.

    A seen token's logit is divided by `penalty` where positive and multiplied
    by it where negative, so penalty > 1 always makes it less likely.
    """
    seen_NxV = _seen_NxV(seq_NxT, pos, logits_NxV.shape[-1])
    penalized_NxV = jnp.where(logits_NxV > 0, logits_NxV / penalty, logits_NxV * penalty)
    return jnp.where(seen_NxV, penalized_NxV, logits_NxV)


def adjust_logits(
    logits_NxV: jax.Array,
    seq_NxT: jax.Array,
    pos: jax.Array,
    *,
    no_repeat_ngram_size: int = 0,
    repetition_penalty: float = 1.0,
    eos_id: int | None = None,
) -> jax.Array:
    """The penalty, then n-gram blocking (-inf); EOS is never blocked, so every row can end."""
    check_repetition_args(no_repeat_ngram_size, repetition_penalty)
    logits_NxV = logits_NxV.astype(jnp.float32)
    if repetition_penalty != 1.0:
        logits_NxV = penalize_repeats(logits_NxV, seq_NxT, pos, repetition_penalty)
    if no_repeat_ngram_size > 0:
        banned_NxV = banned_ngram_tokens(seq_NxT, pos, no_repeat_ngram_size, logits_NxV.shape[-1])
        if eos_id is not None:
            banned_NxV = banned_NxV.at[:, eos_id].set(False)
        logits_NxV = jnp.where(banned_NxV, NEG_INF, logits_NxV)
    return logits_NxV
