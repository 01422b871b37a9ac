"""Eval perplexity and accuracy: sums over batches, padding excluded, divided once."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm.train.evaluate import summarize_eval
from llm.train.losses import cross_entropy_sums


def logits_from_probs(probs):
    return jnp.log(jnp.asarray(probs, jnp.float32))


def _sums(probs, targets, weights):
    sums = jax.jit(cross_entropy_sums)(logits_from_probs(probs), targets, weights)
    return {f"lm/{k}": float(v) for k, v in sums.items()}


def test_perplexity_excludes_padding_hand_computed():
    # Two rows over a 3-token vocabulary; the last position of row 1 is padding
    # whose target would be very unlikely (it must not count).
    probs = [
        [[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]],
        [[0.2, 0.2, 0.6], [0.98, 0.01, 0.01]],
    ]
    sums = _sums(probs, jnp.array([[0, 1], [2, 1]]), jnp.array([[1.0, 1.0], [1.0, 0.0]]))
    nll = -(math.log(0.5) + math.log(0.8) + math.log(0.6))
    assert sums["lm/weight_sum"] == 3.0
    assert sums["lm/nll_sum"] == pytest.approx(nll, rel=1e-6)
    summary = summarize_eval(sums)
    assert summary["eval/loss"] == pytest.approx(nll / 3, rel=1e-6)
    assert summary["eval/perplexity"] == pytest.approx(math.exp(nll / 3), rel=1e-6)


def test_perplexity_accumulates_token_weighted_across_batches():
    a = _sums([[[0.5, 0.5], [0.5, 0.5]]], jnp.array([[0, 1]]), jnp.ones((1, 2)))
    b = _sums([[[0.25, 0.75], [0.9, 0.1]]], jnp.array([[0, 1]]), jnp.array([[1.0, 0.0]]))
    total = summarize_eval({k: a[k] + b[k] for k in a})
    expected = (2 * math.log(2) + math.log(4)) / 3
    assert total["eval/loss"] == pytest.approx(expected, rel=1e-6)
    assert total["eval/perplexity"] == pytest.approx(math.exp(expected), rel=1e-6)
    # Not the mean of per-batch perplexities (2 and 4).
    assert total["eval/perplexity"] != pytest.approx(3.0)


def test_mlm_accuracy_counts_only_weighted_positions():
    logits = jnp.asarray(np.eye(4)[[[0, 1, 2, 3], [3, 3, 0, 1]]], jnp.float32)  # argmax = index
    targets = jnp.array([[0, 2, 2, 1], [3, 0, 0, 0]])
    weights = jnp.array([[1, 1, 0, 1], [1, 0, 1, 0]])
    sums = jax.jit(cross_entropy_sums)(logits, targets, weights)
    # Weighted positions: (0,0) ok, (0,1) wrong, (0,3) wrong, (1,0) ok, (1,2) ok.
    assert float(sums["correct_sum"]) == 3.0 and float(sums["weight_sum"]) == 5.0
    summary = summarize_eval({f"mlm/{k}": 2 * float(v) for k, v in sums.items()})
    assert summary["eval/mlm/accuracy"] == pytest.approx(0.6)
