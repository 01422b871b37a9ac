"""Adapters for flax models with a 'cache' collection: cached decoding equals full recomputation."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from llm.decode import (
    beam_search,
    decoder_tokens_to_logits,
    encoder_decoder_tokens_to_logits,
    greedy,
    init_cache,
    length_penalty,
)
from tests.decode.decode_toys import ToyDecoder, ToyEncoderDecoder

BOS, EOS, PAD = 1, 2, 0
MAX_NEW = 5


def token_logp(apply_full, seq_BxT):
    """log p of every token seq[:, 1:] from one cache-free causal forward pass."""
    logp_BxLxV = jax.nn.log_softmax(apply_full(jnp.asarray(seq_BxT[:, :-1])).astype(jnp.float32))
    return np.take_along_axis(np.asarray(logp_BxLxV), np.asarray(seq_BxT[:, 1:])[..., None], -1)[
        ..., 0
    ]


def naive_greedy(apply_full, prompt_BxP, steps):
    """Recomputes the whole prefix every step: the reference for cached decoding.

    The buffer has a fixed length (one compilation); causality makes the
    padding to the right of the current position irrelevant.
    """
    batch, prompt_len = prompt_BxP.shape
    seq = np.concatenate([np.asarray(prompt_BxP), np.zeros((batch, steps), np.int32)], 1)
    full = jax.jit(apply_full)
    for pos in range(prompt_len, prompt_len + steps):
        seq[:, pos] = np.asarray(jnp.argmax(full(jnp.asarray(seq))[:, pos - 1], -1))
    return seq


def first_eos_padded(seq, start):
    seq = seq.copy()
    for row in seq:
        hits = np.flatnonzero(row[start:] == EOS)
        if hits.size:
            row[start + hits[0] + 1 :] = PAD
    return seq


def check_beams_rescored(apply_full, tokens_BxKxT, scores_BxK, prompt_len, alpha):
    """Scores recomputed without the cache only match if the cache followed the beams."""
    batch, beams, total = tokens_BxKxT.shape
    logp_BxKxT = token_logp(apply_full, tokens_BxKxT.reshape(batch * beams, total)).reshape(
        batch, beams, -1
    )
    for b in range(batch):
        for k in range(beams):
            gen = tokens_BxKxT[b, k, prompt_len:]
            length = int(np.flatnonzero(gen == EOS)[0]) + 1 if EOS in gen else len(gen)
            logp = logp_BxKxT[b, k, prompt_len - 1 : prompt_len - 1 + length].sum()
            np.testing.assert_allclose(
                scores_BxK[b, k], logp / length_penalty(length, alpha), rtol=1e-4
            )


def test_decoder_adapter_matches_full_forward():
    model = ToyDecoder()
    prompt = jnp.array([[BOS, 3, 4], [BOS, 5, 6]], jnp.int32)
    params = model.init(jax.random.key(0), prompt)["params"]
    apply_full = functools.partial(model.apply, {"params": params})
    cache = init_cache(model, jnp.zeros((2, model.max_len), jnp.int32))
    assert cache["cache_index"].shape == () and cache["cached_x"].shape == (
        2,
        model.max_len,
        model.dim,
    )

    @jax.jit
    def decode(params, cache, prompt):
        step = decoder_tokens_to_logits(model, params)
        out = greedy(step, cache, prompt, max_decode_len=MAX_NEW, eos_id=EOS)
        beams = beam_search(
            step, cache, prompt, beam_size=3, max_decode_len=MAX_NEW, eos_id=EOS, alpha=0.6
        )
        return out, beams

    out, (tokens, scores) = decode(params, cache, prompt)
    np.testing.assert_array_equal(
        out, first_eos_padded(naive_greedy(apply_full, prompt, MAX_NEW), 3)
    )
    check_beams_rescored(apply_full, np.asarray(tokens), np.asarray(scores), 3, 0.6)
    assert np.all(np.asarray(scores)[:, 0] >= np.asarray(scores)[:, 1])


def test_encoder_decoder_adapter_encodes_once_and_repeats_for_beams():
    model = ToyEncoderDecoder()
    src = jnp.array([[3, 4, 5, 0], [6, 3, 0, 0]], jnp.int32)
    bos = jnp.full((2, 1), BOS, jnp.int32)
    params = model.init(jax.random.key(1), src, bos)["params"]
    cache = init_cache(model, src, jnp.zeros((2, model.max_len), jnp.int32))

    def apply_full(tgt):
        return model.apply({"params": params}, src, tgt)

    @jax.jit
    def decode(params, cache, src):
        step = encoder_decoder_tokens_to_logits(model, params, src)
        out = greedy(step, cache, bos, max_decode_len=MAX_NEW, eos_id=EOS)
        beam1 = beam_search(
            step, cache, bos, beam_size=1, max_decode_len=MAX_NEW, eos_id=EOS, alpha=0.0
        )
        beams = beam_search(
            step, cache, bos, beam_size=4, max_decode_len=MAX_NEW, eos_id=EOS, alpha=0.6
        )
        return out, beam1, beams

    out, (beam1_tokens, _), (tokens, scores) = decode(params, cache, src)
    np.testing.assert_array_equal(out, first_eos_padded(naive_greedy(apply_full, bos, MAX_NEW), 1))
    np.testing.assert_array_equal(beam1_tokens[:, 0], out)

    def apply_beams(tgt_NxL):
        # Beam rows are example-major, so each source is repeated K times.
        return model.apply({"params": params}, jnp.repeat(src, tgt_NxL.shape[0] // 2, 0), tgt_NxL)

    check_beams_rescored(apply_beams, np.asarray(tokens), np.asarray(scores), 1, 0.6)
