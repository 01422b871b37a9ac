"""Adapters for flax models with a 'cache' collection: cached decoding equals full recomputation."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from llm.bench.decoding import time_decode
from llm.decode import (
    beam_search,
    decoder_recompute_tokens_to_logits,
    decoder_tokens_to_logits,
    encoder_decoder_tokens_to_logits,
    greedy,
    init_cache,
)
from tests.decode.decode_toys import (
    ToyDecoder,
    ToyEncoderDecoder,
    check_beams_rescored,
    first_eos_padded,
    naive_greedy,
    random_params,
)

BOS, EOS = 1, 2
MAX_NEW = 5


def test_decoder_adapter_matches_full_forward():
    model = ToyDecoder()
    prompt = jnp.array([[BOS, 3, 4], [BOS, 5, 6]], jnp.int32)
    params = random_params(model, prompt)
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


def test_prefill_in_one_call_equals_token_by_token():
    model = ToyDecoder()
    prompt = jnp.array([[BOS, 3, 4, 5], [BOS, 5, 6, 0], [BOS, 4, 3, 3]], jnp.int32)
    lengths = jnp.array([4, 3, 4])
    params = random_params(model, prompt, seed=2)
    cache = init_cache(model, jnp.zeros((3, model.max_len), jnp.int32))

    @functools.partial(jax.jit, static_argnames="prefill_len")
    def decode(params, cache, prompt, prefill_len):
        step = decoder_tokens_to_logits(model, params)
        kw = dict(max_decode_len=MAX_NEW, eos_id=EOS, prompt_lengths_B=lengths)
        out = greedy(step, cache, prompt, prefill_len=prefill_len, **kw)
        beams = beam_search(step, cache, prompt, beam_size=2, prefill_len=prefill_len, **kw)
        return out, beams

    # 3 = the shortest prompt: one call takes tokens 0-1, the loop the rest.
    want, got = decode(params, cache, prompt, 0), decode(params, cache, prompt, 3)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1][0], want[1][0])
    np.testing.assert_allclose(got[1][1], want[1][1], rtol=1e-5)


def test_encoder_decoder_adapter_encodes_once_and_repeats_for_beams():
    model = ToyEncoderDecoder()
    src = jnp.array([[3, 4, 5, 0], [6, 3, 0, 0]], jnp.int32)
    bos = jnp.full((2, 1), BOS, jnp.int32)
    params = random_params(model, src, bos, seed=1)
    cache = init_cache(model, src, jnp.zeros((2, model.max_len), jnp.int32))

    def apply_full(tgt):
        return model.apply({"params": params}, src, tgt)  # batch 2, as src

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


def test_cache_free_baseline_decodes_the_same():
    model = ToyDecoder()
    prompt = jnp.array([[BOS, 3, 4], [BOS, 5, 6]], jnp.int32)
    params = random_params(model, prompt, seed=3)
    cache = init_cache(model, jnp.zeros((2, 3 + MAX_NEW), jnp.int32))

    @jax.jit
    def cached(params, cache, prompt):
        step = decoder_tokens_to_logits(model, params)
        return beam_search(step, cache, prompt, beam_size=2, max_decode_len=MAX_NEW, eos_id=EOS)

    @jax.jit
    def recomputed(params, prompt):
        step, state = decoder_recompute_tokens_to_logits(model, params, 2, 3 + MAX_NEW)
        return beam_search(step, state, prompt, beam_size=2, max_decode_len=MAX_NEW, eos_id=EOS)

    want = cached(params, cache, prompt)
    timing = time_decode(recomputed, params, prompt, new_tokens=2 * MAX_NEW, repeats=1)
    got = recomputed(params, prompt)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5)
    assert timing.run_s > 0 and timing.new_tokens_per_s == 2 * MAX_NEW / timing.run_s
