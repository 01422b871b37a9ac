"""Repetition remedies and per-row length limits on hand-built step functions (exact outputs)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm.decode import beam_search, greedy, length_penalty, sample
from llm.decode.repetition import adjust_logits, banned_ngram_tokens
from llm.decode.text import DecodeOptions, source_relative_limits
from llm.errors import ConfigError
from tests.decode.decode_toys import bigram_table, trigram_cache, trigram_step_fn

VOCAB, EOS, PAD = 6, 2, 0


def _table(rows):
    """bigram_table where PAD and BOS (0, 1) never come next; unlisted mass spread evenly."""
    return bigram_table({c: {0: 0.0, 1: 0.0} | rows.get(c, {}) for c in range(VOCAB)}, VOCAB)


# A model stuck in a loop: 3 -> 4 -> 3 -> 4 ...; blocking the loop leaves other choices.
LOOP = _table(
    {1: {3: 0.9}, 3: {4: 0.8, 5: 0.1, 2: 0.05}, 4: {3: 0.8, 5: 0.12}, 5: {3: 0.5, 4: 0.3}}
)
# Never ends: EOS has probability 0 after every token.
ENDLESS = _table({t: {EOS: 0.0, 3: 0.5} for t in range(VOCAB)})


def _reference_greedy(table, prompt, steps, *, n=0, penalty=1.0):
    """Greedy on the table in plain Python: penalty on seen tokens, then n-gram bans."""
    seq = list(prompt)
    for _ in range(steps):
        prev = seq[-2] if len(seq) > 1 else 0
        logits = np.array(table[prev, seq[-1]], np.float64)
        for t in set(seq):
            logits[t] = logits[t] / penalty if logits[t] > 0 else logits[t] * penalty
        if n:
            tail = tuple(seq[len(seq) - n + 1 :]) if n > 1 else ()
            for i in range(len(seq) - n + 1):
                if tuple(seq[i : i + n - 1]) == tail and seq[i + n - 1] != EOS:
                    logits[seq[i + n - 1]] = -np.inf
        seq.append(int(np.argmax(logits)))
        if seq[-1] == EOS:
            break
    return seq[len(prompt) :]


def _generated(row, start):
    """Tokens after the prompt up to (not including) EOS, without padding."""
    out = []
    for t in np.asarray(row)[start:]:
        if t in (EOS, PAD):
            break
        out.append(int(t))
    return out


def _ngrams(tokens, n):
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def test_banned_tokens_are_those_completing_an_earlier_ngram():
    seq = jnp.array([[5, 3, 4, 3, 0, 0]], jnp.int32)
    # History 5 3 4 3; the bigram (3, 4) occurred, so after the last 3, 4 is banned.
    assert np.flatnonzero(banned_ngram_tokens(seq, jnp.int32(4), 2, VOCAB)[0]).tolist() == [4]
    # (4, 3, x) never occurred in full: nothing banned.
    assert not banned_ngram_tokens(seq, jnp.int32(4), 3, VOCAB).any()
    # n=1 bans every token seen.
    assert np.flatnonzero(banned_ngram_tokens(seq, jnp.int32(4), 1, VOCAB)[0]).tolist() == [3, 4, 5]
    # Too early for any bigram to repeat.
    assert not banned_ngram_tokens(seq, jnp.int32(1), 2, VOCAB).any()


def test_eos_is_never_blocked():
    seq = jnp.array([[1, EOS, 1, 0]], jnp.int32)
    zeros = jnp.zeros((1, VOCAB))
    blocked = adjust_logits(zeros, seq, jnp.int32(3), no_repeat_ngram_size=2)
    assert np.isneginf(blocked[0, EOS])  # (1, EOS) occurred
    kept = adjust_logits(zeros, seq, jnp.int32(3), no_repeat_ngram_size=2, eos_id=EOS)
    assert np.isfinite(kept[0]).tolist() == [True] * VOCAB


@pytest.mark.parametrize("n", [1, 2, 3])
def test_greedy_no_repeat_ngram_matches_reference_and_never_repeats(n):
    step = trigram_step_fn(LOOP)
    prompt = jnp.array([[1], [5]], jnp.int32)
    plain = greedy(step, trigram_cache(2), prompt, max_decode_len=10, eos_id=EOS)
    assert _generated(plain[0], 1)[:4] == [3, 4, 3, 4]  # the loop it is stuck in
    out = jax.jit(
        lambda p: greedy(
            step, trigram_cache(2), p, max_decode_len=10, eos_id=EOS, no_repeat_ngram_size=n
        )
    )(prompt)
    for row, start in zip(np.asarray(out), [[1], [5]], strict=True):
        gen = _generated(row, 1)
        assert gen == [t for t in _reference_greedy(LOOP, start, 10, n=n) if t != EOS]
        history = start + gen
        assert len(set(_ngrams(history, n))) == len(_ngrams(history, n))


def test_sampling_and_beams_never_repeat_a_bigram():
    step = trigram_step_fn(LOOP)
    prompt = jnp.array([[1]] * 16, jnp.int32)
    sampled = sample(
        step,
        trigram_cache(16),
        prompt,
        jax.random.key(0),
        max_decode_len=12,
        eos_id=EOS,
        temperature=1.0,
        no_repeat_ngram_size=2,
    )
    tokens, _ = beam_search(
        step,
        trigram_cache(2),
        prompt[:2],
        beam_size=3,
        max_decode_len=12,
        eos_id=EOS,
        no_repeat_ngram_size=2,
    )
    outputs = [[1] + _generated(r, 1) for r in np.asarray(sampled)]
    outputs += [[1] + _generated(r, 1) for r in np.asarray(tokens).reshape(-1, tokens.shape[-1])]
    assert any(len(o) > 4 for o in outputs)
    for o in outputs:
        assert len(set(_ngrams(o, 2))) == len(_ngrams(o, 2)), o


def test_repetition_penalty_matches_reference():
    # After 3, staying on 3 is likeliest (0.5 vs 0.3 for 4): greedy repeats 3 forever.
    table = _table({1: {3: 0.9}, 3: {3: 0.5, 4: 0.3}, 4: {4: 0.5, 5: 0.3}})
    step = trigram_step_fn(table)
    prompt = jnp.array([[1]], jnp.int32)
    plain = greedy(step, trigram_cache(1), prompt, max_decode_len=6, eos_id=EOS)
    assert _generated(plain[0], 1) == [3] * 6
    out = greedy(
        step, trigram_cache(1), prompt, max_decode_len=6, eos_id=EOS, repetition_penalty=2.0
    )
    expected = _reference_greedy(table, [1], 6, penalty=2.0)
    # log 0.5 * 2 < log 0.3: the penalty moves on from 3, then from 4, then ends.
    assert expected == [3, 4, 5, EOS]
    assert _generated(out[0], 1) == [3, 4, 5]


def test_per_row_limits_cut_each_row_exactly():
    step = trigram_step_fn(ENDLESS)
    prompt = jnp.array([[1], [1], [1]], jnp.int32)
    limits = jnp.array([2, 5, 3], jnp.int32)
    out = greedy(
        step, trigram_cache(3), prompt, max_decode_len=6, eos_id=EOS, max_decode_lens_B=limits
    )
    assert [len(_generated(r, 1)) for r in np.asarray(out)] == [2, 5, 3]
    tokens, scores = beam_search(
        step,
        trigram_cache(3),
        prompt,
        beam_size=2,
        max_decode_len=6,
        eos_id=EOS,
        alpha=0.6,
        max_decode_lens_B=limits,
    )
    for b, limit in enumerate([2, 5, 3]):
        assert [len(_generated(r, 1)) for r in np.asarray(tokens[b])] == [limit, limit]
    # The best beam repeats 3 (p = 0.5 each step), scored at its own row's length.
    expected = [limit * np.log(0.5) / float(length_penalty(limit, 0.6)) for limit in (2, 5, 3)]
    np.testing.assert_allclose(np.asarray(scores[:, 0]), expected, rtol=1e-5)


def test_source_relative_limits_are_a_times_length_plus_b_capped():
    assert source_relative_limits([3, 10, 100], 1.0, 50, 64).tolist() == [53, 60, 64]
    assert source_relative_limits([3, 4], 1.5, 0, 64).tolist() == [5, 6]
    assert source_relative_limits([0], 0.0, 0, 64).tolist() == [1]


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(no_repeat_ngram_size=-1), "no_repeat_ngram_size=-1"),
        (dict(repetition_penalty=0.0), "repetition_penalty=0.0"),
        (dict(max_len_a=0.0, max_len_b=0), "max_len_a=0.0, max_len_b=0"),
        (dict(max_len_b=-1), "max_len_b=-1"),
    ],
)
def test_bad_remedy_options_fail_naming_them(options, message):
    with pytest.raises(ConfigError, match=message):
        DecodeOptions(**options).check()


def test_defaults_match_the_paper():
    # AIAYN 6.1: beam 4 and alpha 0.6 (launch.eval's defaults), output up to input
    # length + 50, no n-gram blocking or penalty.
    options = DecodeOptions()
    assert (options.max_len_a, options.max_len_b, options.alpha) == (1.0, 50, 0.6)
    assert (options.no_repeat_ngram_size, options.repetition_penalty) == (0, 1.0)
