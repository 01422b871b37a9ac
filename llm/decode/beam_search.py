"""Beam search with the GNMT length penalty over a step function with a cache.

Scores are sums of token log-probabilities of the generated part, divided by
lp(len) = ((5 + len) / 6) ** alpha (Wu et al. 2016), len counting EOS. AIAYN
used beam 4 and alpha 0.6.

Each step expands the K alive beams to K*V candidates and keeps the best 2K.
A candidate ending in EOS is finished only if it ranks in the top K (so
beam_size=1 with alpha=0 is exactly greedy); the best K candidates that do not
end in EOS stay alive, so the beam never shrinks. At a row's last allowed
position every top-K candidate is finished, scored at its full length. A row
stops once no alive beam can still beat its worst finished one.
"""

import jax
import jax.numpy as jnp

from llm.decode import beams, prompts, repetition
from llm.decode.step import PyTree, TokensToLogits

NEG_INF = -jnp.inf


def length_penalty(length: jax.Array | int, alpha: float | jax.Array) -> jax.Array:
    """GNMT length penalty ((5 + length) / 6) ** alpha."""
    return ((5.0 + jnp.asarray(length, jnp.float32)) / 6.0) ** alpha


def _set_position(seq_BxMxT: jax.Array, token_BxM: jax.Array, pos: jax.Array) -> jax.Array:
    return jax.lax.dynamic_update_slice_in_dim(seq_BxMxT, token_BxM[..., None], pos, axis=2)


def _select_rows(keep_B: jax.Array, old: jax.Array, new: jax.Array) -> jax.Array:
    keep = keep_B.reshape(keep_B.shape + (1,) * (old.ndim - 1))
    return jnp.where(keep, old, new)


def beam_search(
    tokens_to_logits: TokensToLogits,
    cache: PyTree,
    prompt_BxP: jax.Array,
    *,
    beam_size: int,
    max_decode_len: int,
    eos_id: int,
    alpha: float | jax.Array = 0.6,
    pad_id: int = 0,
    prompt_lengths_B: jax.Array | None = None,
    cache_batch_axis: int = 0,
    prefill_len: int = 0,
    max_decode_lens_B: jax.Array | None = None,
    no_repeat_ngram_size: int = 0,
    repetition_penalty: float = 1.0,
) -> tuple[jax.Array, jax.Array]:
    """Returns (tokens [B, K, P + max_decode_len], scores [B, K]), best beam first.

    `cache` is for batch B; it is repeated to B*K rows here, and
    `tokens_to_logits` is then called with B*K rows (example-major: row b*K+k
    is beam k of example b). Cache leaves whose axis `cache_batch_axis` is
    B*K are reordered as beams are chosen; others (scalar indices) are kept.
    Prompt, output layout and prefill_len as in `greedy` (the prefill runs on
    B rows, before the cache is repeated); tokens after EOS are pad_id.
    max_decode_lens_B (per-row limits), no_repeat_ngram_size (over each beam's
    own history) and repetition_penalty (on the logits, before log-softmax) as
    in `greedy`.
    """
    prompts.check_decode_args(prompt_BxP, max_decode_len, prefill_len)
    repetition.check_repetition_args(no_repeat_ngram_size, repetition_penalty)
    batch, k = prompt_BxP.shape[0], beam_size
    lengths_B = prompts.prompt_lengths_or_default(prompt_BxP, prompt_lengths_B)
    seq_BxT = prompts.init_sequences(prompt_BxP, lengths_B, max_decode_len, pad_id)
    total_len = seq_BxT.shape[1]
    limit_B = prompts.row_limits(max_decode_lens_B, lengths_B, max_decode_len)
    end_B = lengths_B + limit_B
    max_lp_B = length_penalty(limit_B, alpha)

    def step_fn(state):
        step, alive_seq_BxKxT, alive_logp_BxK, fin_seq_BxKxT, fin_score_BxK, cache, done_B = state
        token_Nx1 = beams.flatten_beams(alive_seq_BxKxT[:, :, step][..., None])
        logits_NxV, cache = tokens_to_logits(token_Nx1, cache)
        vocab = logits_NxV.shape[-1]
        pos = step + 1
        logits_NxV = repetition.adjust_logits(
            logits_NxV,
            beams.flatten_beams(alive_seq_BxKxT),
            pos,
            no_repeat_ngram_size=no_repeat_ngram_size,
            repetition_penalty=repetition_penalty,
            eos_id=eos_id,
        )
        logp_BxKxV = beams.unflatten_beams(jax.nn.log_softmax(logits_NxV.astype(jnp.float32)), k)
        forced_B = pos < lengths_B
        is_last_B = pos + 1 >= end_B
        gen_len_B = pos + 1 - lengths_B

        # Best 2K continuations of all beams: enough to keep K alive even if
        # K of them end in EOS.
        cand_BxKV = (alive_logp_BxK[:, :, None] + logp_BxKxV).reshape(batch, k * vocab)
        top_logp_BxC, top_idx_BxC = jax.lax.top_k(cand_BxKV, min(2 * k, k * vocab))
        top_beam_BxC = top_idx_BxC // vocab
        top_token_BxC = (top_idx_BxC % vocab).astype(jnp.int32)
        top_seq_BxCxT = _set_position(
            beams.gather_BxK(alive_seq_BxKxT, top_beam_BxC), top_token_BxC, pos
        )

        ends_BxC = (top_token_BxC == eos_id) | is_last_B[:, None]
        in_top_k_BxC = jnp.arange(top_logp_BxC.shape[1])[None, :] < k
        finishing_BxC = ends_BxC & in_top_k_BxC & jnp.isfinite(top_logp_BxC)

        alive_cand_BxC = jnp.where(ends_BxC, NEG_INF, top_logp_BxC)
        new_alive_logp_BxK, alive_pick_BxK = jax.lax.top_k(alive_cand_BxC, k)
        new_alive_seq_BxKxT = beams.gather_BxK(top_seq_BxCxT, alive_pick_BxK)
        parent_BxK = jnp.take_along_axis(top_beam_BxC, alive_pick_BxK, axis=1)

        new_score_BxC = jnp.where(
            finishing_BxC, top_logp_BxC / length_penalty(gen_len_B, alpha)[:, None], NEG_INF
        )
        merged_score_BxM = jnp.concatenate([fin_score_BxK, new_score_BxC], axis=1)
        merged_seq_BxMxT = jnp.concatenate([fin_seq_BxKxT, top_seq_BxCxT], axis=1)
        new_fin_score_BxK, fin_pick_BxK = jax.lax.top_k(merged_score_BxM, k)
        new_fin_seq_BxKxT = beams.gather_BxK(merged_seq_BxMxT, fin_pick_BxK)

        # Rows still reading their prompt keep their beams (the buffer already
        # holds the prompt token); finished rows are frozen.
        keep_B = forced_B | done_B
        identity_BxK = jnp.broadcast_to(jnp.arange(k), (batch, k))
        parent_BxK = jnp.where(keep_B[:, None], identity_BxK, parent_BxK)
        cache = beams.gather_beams(cache, parent_BxK, batch_axis=cache_batch_axis)
        alive_seq_BxKxT = _select_rows(keep_B, alive_seq_BxKxT, new_alive_seq_BxKxT)
        alive_logp_BxK = _select_rows(keep_B, alive_logp_BxK, new_alive_logp_BxK)
        fin_seq_BxKxT = _select_rows(keep_B, fin_seq_BxKxT, new_fin_seq_BxKxT)
        fin_score_BxK = _select_rows(keep_B, fin_score_BxK, new_fin_score_BxK)

        # No continuation can score above best_alive / max(lp) because log-probs
        # only fall as a sequence grows.
        best_lp_B = jnp.maximum(length_penalty(gen_len_B + 1, alpha), max_lp_B)
        bound_B = alive_logp_BxK[:, 0] / best_lp_B
        hopeless_B = fin_score_BxK[:, k - 1] >= bound_B
        done_B = done_B | (~forced_B & (is_last_B | hopeless_B))
        return (
            step + 1,
            alive_seq_BxKxT,
            alive_logp_BxK,
            fin_seq_BxKxT,
            fin_score_BxK,
            cache,
            done_B,
        )

    def cond_fn(state):
        step, *_, done_B = state
        return (step < total_len - 1) & ~jnp.all(done_B)

    alive_seq_BxKxT = jnp.repeat(seq_BxT[:, None, :], k, axis=1)
    # Only beam 0 starts alive so the K beams do not begin as K copies.
    alive_logp_BxK = jnp.tile(jnp.array([0.0] + [NEG_INF] * (k - 1), jnp.float32), (batch, 1))
    fin_score_BxK = jnp.full((batch, k), NEG_INF, jnp.float32)
    start, cache = prompts.prefill(tokens_to_logits, cache, seq_BxT, prefill_len)
    cache = beams.repeat_for_beams(cache, k, batch, batch_axis=cache_batch_axis)
    init = (
        jnp.int32(start),
        alive_seq_BxKxT,
        alive_logp_BxK,
        alive_seq_BxKxT,
        fin_score_BxK,
        cache,
        jnp.zeros((batch,), bool),
    )
    _, alive_seq_BxKxT, alive_logp_BxK, fin_seq_BxKxT, fin_score_BxK, _, _ = jax.lax.while_loop(
        cond_fn, step_fn, init
    )
    # Every row finishes by its last position, so this fallback only fires for
    # degenerate models whose every candidate has probability 0.
    none_finished_B = ~jnp.isfinite(fin_score_BxK[:, 0])
    alive_score_BxK = alive_logp_BxK / max_lp_B[:, None]
    tokens_BxKxT = _select_rows(none_finished_B, alive_seq_BxKxT, fin_seq_BxKxT)
    scores_BxK = _select_rows(none_finished_B, alive_score_BxK, fin_score_BxK)
    return tokens_BxKxT, scores_BxK
