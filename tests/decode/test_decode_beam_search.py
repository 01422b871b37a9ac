"""Greedy and beam search on hand-built step functions whose scores are known."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm.decode import beam_search, greedy, length_penalty
from tests.decode.decode_toys import (
    bigram_table,
    brute_force,
    random_trigram_table,
    trigram_cache,
    trigram_step_fn,
)

PAD, BOS, EOS, A, B = 0, 1, 2, 3, 4
VOCAB = 5


@functools.cache
def _jitted(search, **static):
    # The table and alpha are arguments, not closure constants, so tests that
    # share shapes and static settings share one compilation.
    def run(table, prompt, lengths, alpha):
        common = dict(eos_id=EOS, prompt_lengths_B=lengths, **static)
        step, cache = trigram_step_fn(table), trigram_cache(prompt.shape[0])
        if search == "greedy":
            return greedy(step, cache, prompt, **common)
        return beam_search(step, cache, prompt, alpha=alpha, **common)

    return jax.jit(run)


def run_greedy(table, prompt, max_decode_len, prompt_lengths=None):
    fn = _jitted("greedy", max_decode_len=max_decode_len)
    return np.asarray(fn(jnp.asarray(table), jnp.asarray(prompt, jnp.int32), prompt_lengths, 0.0))


def run_beam(table, prompt, max_decode_len, beam_size, alpha, prompt_lengths=None):
    fn = _jitted("beam", max_decode_len=max_decode_len, beam_size=beam_size)
    tokens, scores = fn(
        jnp.asarray(table), jnp.asarray(prompt, jnp.int32), prompt_lengths, jnp.float32(alpha)
    )
    return np.asarray(tokens), np.asarray(scores)


# Greedy takes A (0.6) and then EOS (0.35): 0.21. B (0.4) then EOS (0.9) is 0.36.
GREEDY_TRAP = bigram_table({BOS: {A: 0.6, B: 0.4}, A: {EOS: 0.35}, B: {EOS: 0.9}}, VOCAB)


def test_greedy_takes_locally_best_path():
    out = run_greedy(GREEDY_TRAP, [[BOS]], max_decode_len=4)
    np.testing.assert_array_equal(out, [[BOS, A, EOS, PAD, PAD]])


def test_beam_finds_best_sequence_where_greedy_fails():
    tokens, scores = run_beam(GREEDY_TRAP, [[BOS]], max_decode_len=4, beam_size=2, alpha=0.0)
    np.testing.assert_array_equal(tokens[0, 0], [BOS, B, EOS, PAD, PAD])
    np.testing.assert_allclose(scores[0, 0], math.log(0.4 * 0.9), rtol=1e-5)
    # Second best: the greedy path A EOS.
    np.testing.assert_array_equal(tokens[0, 1], [BOS, A, EOS, PAD, PAD])
    np.testing.assert_allclose(scores[0, 1], math.log(0.6 * 0.35), rtol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_one_equals_greedy(seed):
    table = random_trigram_table(VOCAB, seed)
    prompt = [[BOS, A, B], [BOS, B, B], [BOS, A, A]]
    greedy_out = run_greedy(table, prompt, max_decode_len=6)
    tokens, _ = run_beam(table, prompt, max_decode_len=6, beam_size=1, alpha=0.0)
    np.testing.assert_array_equal(tokens[:, 0], greedy_out)


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.5])
def test_wide_beam_matches_exhaustive_search(alpha):
    # With K >= V**(max_len-1) nothing is ever pruned, so beam search is exact;
    # the trigram model also checks that the cache is reordered with the beams.
    table = random_trigram_table(VOCAB, seed=3)
    max_decode_len = 3
    tokens, scores = run_beam(table, [[BOS, A]], max_decode_len, beam_size=25, alpha=alpha)
    expected = brute_force(table, [BOS, A], max_decode_len, EOS, alpha)
    np.testing.assert_allclose(scores[0, :5], [s for s, _ in expected[:5]], rtol=1e-5)
    for k in range(5):
        gen = list(expected[k][1]) + [PAD] * (max_decode_len - len(expected[k][1]))
        np.testing.assert_array_equal(tokens[0, k], [BOS, A] + gen)


def test_exhaustive_beam_best_on_random_models():
    for seed in range(4, 8):
        table = random_trigram_table(VOCAB, seed)
        tokens, scores = run_beam(table, [[BOS]], max_decode_len=3, beam_size=VOCAB**2, alpha=0.6)
        best_score, best_tokens = brute_force(table, [BOS], 3, EOS, 0.6)[0]
        np.testing.assert_allclose(scores[0, 0], best_score, rtol=1e-5)
        np.testing.assert_array_equal(tokens[0, 0, 1 : 1 + len(best_tokens)], best_tokens)


def test_length_penalty_switches_choice_at_formula_threshold():
    # Short: EOS at once (0.5). Long: A (0.4) then EOS (0.95).
    table = bigram_table({BOS: {EOS: 0.5, A: 0.4}, A: {EOS: 0.95}}, VOCAB)
    logp_short, logp_long = math.log(0.5), math.log(0.4 * 0.95)
    # long wins iff logp_long / lp(2) > logp_short / lp(1), lp(1) = 1.
    threshold = math.log(logp_long / logp_short) / math.log(7 / 6)
    assert abs(length_penalty(2, 1.0) - 7 / 6) < 1e-6 and abs(length_penalty(1, 3.0) - 1.0) < 1e-6
    for alpha, expected in [(threshold - 0.05, [BOS, EOS, PAD]), (threshold + 0.05, [BOS, A, EOS])]:
        tokens, scores = run_beam(table, [[BOS]], max_decode_len=2, beam_size=2, alpha=alpha)
        np.testing.assert_array_equal(tokens[0, 0], expected)
        want = logp_short if expected[1] == EOS else logp_long / (7 / 6) ** alpha
        np.testing.assert_allclose(scores[0, 0], want, rtol=1e-5)


def test_eos_ends_rows_and_pads_after():
    # After EOS the model would love to say A; finished rows must stay padded.
    table = bigram_table({BOS: {EOS: 0.7}, EOS: {A: 0.99}, A: {A: 0.9}}, VOCAB)
    out = run_greedy(table, [[BOS], [BOS]], max_decode_len=4)
    np.testing.assert_array_equal(out, [[BOS, EOS, PAD, PAD, PAD]] * 2)
    tokens, scores = run_beam(table, [[BOS]], max_decode_len=4, beam_size=3, alpha=0.6)
    assert tokens.shape == (1, 3, 5)
    for k in range(3):
        row = list(tokens[0, k])
        if EOS in row:
            assert all(t == PAD for t in row[row.index(EOS) + 1 :]), row
    np.testing.assert_array_equal(tokens[0, 0], [BOS, EOS, PAD, PAD, PAD])
    np.testing.assert_allclose(scores[0, 0], math.log(0.7), rtol=1e-5)
    assert np.all(np.diff(scores[0]) <= 0)


def test_max_decode_len_stops_rows_without_eos():
    table = bigram_table({BOS: {A: 0.9}, A: {A: 0.9}}, VOCAB)
    out = run_greedy(table, [[BOS]], max_decode_len=3)
    np.testing.assert_array_equal(out, [[BOS, A, A, A]])
    tokens, scores = run_beam(table, [[BOS]], max_decode_len=3, beam_size=2, alpha=0.6)
    np.testing.assert_array_equal(tokens[0, 0], [BOS, A, A, A])
    np.testing.assert_allclose(scores[0, 0], 3 * math.log(0.9) / length_penalty(3, 0.6), rtol=1e-5)


@pytest.mark.parametrize("search", ["greedy", "beam"])
def test_padded_prompts_of_different_lengths_match_unpadded_runs(search):
    table = random_trigram_table(VOCAB, seed=11)
    prompts = [[BOS, A, B, A], [BOS, B], [BOS]]
    max_decode_len = 4
    padded = [p + [PAD] * (4 - len(p)) for p in prompts]
    lengths = jnp.array([len(p) for p in prompts])
    if search == "greedy":
        batched = run_greedy(table, padded, max_decode_len, lengths)
    else:
        batched = run_beam(table, padded, max_decode_len, 3, 0.6, lengths)[0][:, 0]
    for i, p in enumerate(prompts):
        if search == "greedy":
            alone = run_greedy(table, [p], max_decode_len)[0]
        else:
            alone = run_beam(table, [p], max_decode_len, 3, 0.6)[0][0, 0]
        # Same prompt and at most max_decode_len new tokens, then padding.
        np.testing.assert_array_equal(batched[i, : len(alone)], alone)
        assert np.all(batched[i, len(alone) :] == PAD)


def test_bad_arguments_fail_clearly():
    with pytest.raises(ValueError, match="prompt"):
        run_greedy(GREEDY_TRAP, np.zeros((2, 0), np.int32), 3)
    with pytest.raises(ValueError, match="max_decode_len"):
        run_greedy(GREEDY_TRAP, [[BOS]], 0)
