"""Decoding the project's real models (llm.models) through the adapters."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm.decode import (
    beam_search,
    decoder_tokens_to_logits,
    encoder_decoder_tokens_to_logits,
    greedy,
    init_cache,
)
from tests.decode.decode_toys import (
    check_beams_rescored,
    first_eos_padded,
    naive_greedy,
    random_params,
)

models = pytest.importorskip("llm.models")

BOS, EOS = 1, 2
MAX_NEW = 4
TINY = dict(vocab_size=11, d_model=16, num_heads=2, d_ff=32, num_layers=2, max_len=16)


@pytest.mark.parametrize(
    "overrides, cache_batch_axis",
    [
        (dict(), 0),
        # Scanned layers stack the KV cache as [layers, B, ...].
        pytest.param(
            dict(position="rotary", scan_layers=True, num_kv_heads=1, norm="rmsnorm"),
            1,
            marks=pytest.mark.slow,
        ),
    ],
)
def test_decoder_greedy_and_beam_match_full_forward(overrides, cache_batch_axis):
    model = models.build_model(models.ModelConfig(family="decoder", **TINY, **overrides))
    prompt = jnp.array([[BOS, 5, 6], [BOS, 7, 3]], jnp.int32)
    params = random_params(model, prompt)
    cache = init_cache(model, jnp.zeros((2, 3 + MAX_NEW), jnp.int32))

    @jax.jit
    def decode(params, cache, prompt):
        step = decoder_tokens_to_logits(model, params)
        out = greedy(step, cache, prompt, max_decode_len=MAX_NEW, eos_id=EOS)
        prefilled = greedy(step, cache, prompt, max_decode_len=MAX_NEW, eos_id=EOS, prefill_len=3)
        beams = beam_search(
            step,
            cache,
            prompt,
            beam_size=3,
            max_decode_len=MAX_NEW,
            eos_id=EOS,
            cache_batch_axis=cache_batch_axis,
        )
        return out, prefilled, beams

    out, prefilled, (tokens, scores) = decode(params, cache, prompt)
    apply_full = functools.partial(model.apply, {"params": params})
    np.testing.assert_array_equal(
        out, first_eos_padded(naive_greedy(apply_full, prompt, MAX_NEW), 3)
    )
    # The model's multi-token cached call (prefill) agrees with token-by-token.
    np.testing.assert_array_equal(prefilled, out)
    check_beams_rescored(apply_full, np.asarray(tokens), np.asarray(scores), 3, 0.6)


@pytest.mark.slow
def test_encoder_decoder_greedy_and_beam_match_full_forward():
    model = models.build_model(models.ModelConfig(family="encoder_decoder", **TINY))
    src = jnp.array([[5, 6, 7, 0], [8, 3, 0, 0]], jnp.int32)
    bos = jnp.full((2, 1), BOS, jnp.int32)
    params = random_params(model, src, bos, seed=1)
    cache = init_cache(model, src, jnp.zeros((2, MAX_NEW), jnp.int32))

    @jax.jit
    def decode(params, cache, src):
        step = encoder_decoder_tokens_to_logits(model, params, src)
        out = greedy(step, cache, bos, max_decode_len=MAX_NEW, eos_id=EOS)
        beams = beam_search(step, cache, bos, beam_size=3, max_decode_len=MAX_NEW, eos_id=EOS)
        return out, beams

    out, (tokens, scores) = decode(params, cache, src)

    def apply_full(tgt_NxL):
        # Rows are example-major (B for greedy, B*K for beams): repeat each source.
        return model.apply({"params": params}, jnp.repeat(src, tgt_NxL.shape[0] // 2, 0), tgt_NxL)

    np.testing.assert_array_equal(out, first_eos_padded(naive_greedy(apply_full, bos, MAX_NEW), 1))
    check_beams_rescored(apply_full, np.asarray(tokens), np.asarray(scores), 1, 0.6)
