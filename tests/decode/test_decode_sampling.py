"""Sampling: filters keep the right tokens; temperature 0 and top-k 1 are greedy."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm.decode import greedy, sample, sample_logits, top_k_mask, top_p_mask
from tests.decode.decode_toys import random_trigram_table, trigram_cache, trigram_step_fn

BOS, EOS, PAD, VOCAB = 1, 2, 0, 6


def test_top_p_keeps_smallest_set_reaching_p():
    probs = np.array([[0.1, 0.5, 0.15, 0.25]])
    logits = jnp.log(jnp.asarray(probs, jnp.float32))
    for top_p, kept in [(0.45, {1}), (0.74, {1, 3}), (0.76, {1, 2, 3}), (0.95, {0, 1, 2, 3})]:
        masked = np.asarray(top_p_mask(logits, top_p))[0]
        assert set(np.flatnonzero(np.isfinite(masked))) == kept, top_p
        np.testing.assert_allclose(masked[list(kept)], np.log(probs[0, list(kept)]), rtol=1e-6)


def test_top_k_keeps_exactly_k():
    logits = jnp.array([[0.3, 2.0, -1.0, 1.0, 0.5], [5.0, 4.0, 3.0, 2.0, 1.0]])
    masked = np.asarray(top_k_mask(logits, 2))
    np.testing.assert_array_equal(np.isfinite(masked), [[0, 1, 0, 1, 0], [1, 1, 0, 0, 0]])
    np.testing.assert_array_equal(np.asarray(top_k_mask(logits, 0)), np.asarray(logits))


def test_filtered_sampling_follows_renormalized_distribution():
    # temperature 0.5 squares the probabilities; top-k 2 then keeps 0.5 and 0.3.
    probs = np.array([0.1, 0.5, 0.3, 0.1])
    n = 40_000
    logits = jnp.tile(jnp.log(jnp.asarray(probs, jnp.float32)), (n, 1))
    draw = jax.jit(sample_logits, static_argnames=("top_k", "top_p"))
    tokens = np.asarray(draw(logits, jax.random.key(0), temperature=0.5, top_k=2))
    freq = np.bincount(tokens, minlength=4) / n
    expected = np.array([0, 0.25, 0.09, 0]) / 0.34
    np.testing.assert_allclose(freq, expected, atol=0.01)
    # top-p 0.6 on the raw distribution keeps {1, 2}: 0.5 / 0.8 and 0.3 / 0.8.
    tokens = np.asarray(draw(logits, jax.random.key(1), top_p=0.6))
    np.testing.assert_allclose(
        np.bincount(tokens, minlength=4) / n, [0, 0.625, 0.375, 0], atol=0.01
    )


@functools.cache
def _jitted(kind, **static):
    def run(table, prompt, rng):
        step, cache = trigram_step_fn(table), trigram_cache(prompt.shape[0])
        if kind == "greedy":
            return greedy(step, cache, prompt, eos_id=EOS, **static)
        return sample(step, cache, prompt, rng, eos_id=EOS, **static)

    return jax.jit(run)


PROMPT = jnp.array([[BOS, 3], [BOS, 4], [BOS, 5], [BOS, 1]], jnp.int32)


@pytest.mark.parametrize(
    "filters",
    [
        dict(top_k=1),
        dict(temperature=0.0),
        dict(temperature=0.0, top_k=3, top_p=0.9),
        dict(top_k=1, top_p=0.5),
    ],
)
def test_degenerate_sampling_equals_greedy(filters):
    table = jnp.asarray(random_trigram_table(VOCAB, seed=0))
    expected = _jitted("greedy", max_decode_len=8)(table, PROMPT, jax.random.key(0))
    for seed in range(3):
        got = _jitted("sample", max_decode_len=8, **filters)(table, PROMPT, jax.random.key(seed))
        np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))


def test_sampling_is_reproducible_and_pads_after_eos():
    table = jnp.asarray(random_trigram_table(VOCAB, seed=1))
    fn = _jitted("sample", max_decode_len=10, temperature=1.0)
    a = np.asarray(fn(table, jnp.tile(PROMPT, (8, 1)), jax.random.key(7)))
    b = np.asarray(fn(table, jnp.tile(PROMPT, (8, 1)), jax.random.key(7)))
    c = np.asarray(fn(table, jnp.tile(PROMPT, (8, 1)), jax.random.key(8)))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (32, 12)
    ended = 0
    for row in a:
        generated = list(row[2:])
        if EOS in generated:
            ended += 1
            assert all(t == PAD for t in generated[generated.index(EOS) + 1 :])
    assert ended > 0


def test_sampling_arguments_are_checked():
    logits = jnp.zeros((1, 4))
    for kwargs, match in [
        (dict(temperature=-1.0), "temperature"),
        (dict(top_k=-2), "top_k"),
        (dict(top_p=0.0), "top_p"),
    ]:
        with pytest.raises(ValueError, match=match):
            sample_logits(logits, jax.random.key(0), **kwargs)
