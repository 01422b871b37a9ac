"""Perplexity and MLM accuracy from accumulated sums, padding excluded."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm.evals import AccuracySums, NllSums, mlm_accuracy_sums, nll_sums


def logits_from_probs(probs):
    return jnp.log(jnp.asarray(probs, jnp.float32))


def test_perplexity_excludes_padding_hand_computed():
    # Two rows over a 3-token vocabulary; the last position of row 1 is padding
    # whose target would be very unlikely (it must not count).
    probs = [
        [[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]],
        [[0.2, 0.2, 0.6], [0.98, 0.01, 0.01]],
    ]
    targets = jnp.array([[0, 1], [2, 1]])
    weights = jnp.array([[1.0, 1.0], [1.0, 0.0]])
    sums = jax.jit(nll_sums)(logits_from_probs(probs), targets, weights)
    nll = -(math.log(0.5) + math.log(0.8) + math.log(0.6))
    assert float(sums.tokens) == 3.0
    assert float(sums.nll) == pytest.approx(nll, rel=1e-6)
    assert sums.perplexity() == pytest.approx(math.exp(nll / 3), rel=1e-6)


def test_perplexity_accumulates_token_weighted_across_batches():
    probs_a = [[[0.5, 0.5], [0.5, 0.5]]]  # 2 tokens at log 2 each
    probs_b = [[[0.25, 0.75], [0.9, 0.1]]]  # 1 token at -log 0.25 (second is padding)
    total = NllSums.zero()
    total = total.merge(nll_sums(logits_from_probs(probs_a), jnp.array([[0, 1]]), jnp.ones((1, 2))))
    total = total.merge(
        nll_sums(logits_from_probs(probs_b), jnp.array([[0, 1]]), jnp.array([[1.0, 0.0]]))
    )
    expected = (2 * math.log(2) + math.log(4)) / 3
    assert total.mean_nll() == pytest.approx(expected, rel=1e-6)
    assert total.perplexity() == pytest.approx(math.exp(expected), rel=1e-6)
    # Not the mean of per-batch perplexities (2 and 4).
    assert total.perplexity() != pytest.approx(3.0)
    with pytest.raises(ValueError, match="no non-padding tokens"):
        NllSums.zero().perplexity()


def test_mlm_accuracy_counts_only_weighted_positions():
    logits = jnp.asarray(np.eye(4)[[[0, 1, 2, 3], [3, 3, 0, 1]]], jnp.float32)  # argmax = index
    targets = jnp.array([[0, 2, 2, 1], [3, 0, 0, 0]])
    weights = jnp.array([[1, 1, 0, 1], [1, 0, 1, 0]])
    sums = jax.jit(mlm_accuracy_sums)(logits, targets, weights)
    # Weighted positions: (0,0) ok, (0,1) wrong, (0,3) wrong, (1,0) ok, (1,2) ok.
    assert float(sums.correct) == 3.0 and float(sums.total) == 5.0
    assert AccuracySums.zero().merge(sums).merge(sums).accuracy() == pytest.approx(0.6)
