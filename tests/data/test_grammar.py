import math

import numpy as np

from llm.data import grammar


def test_generate_is_deterministic():
    assert grammar.generate(50, seed=3) == grammar.generate(50, seed=3)
    assert grammar.generate(50, seed=3) != grammar.generate(50, seed=4)


def test_exact_entropy_matches_monte_carlo():
    rng = np.random.default_rng(0)
    samples = [grammar.sample(rng) for _ in range(20_000)]
    nats = np.array([n for _, n in samples])
    nbytes = np.array([len(t.encode()) for t, _ in samples])
    # Standard errors are ~0.03 nats and ~0.05 bytes at this sample size.
    assert abs(nats.mean() - grammar.sentence_entropy()) < 0.15
    assert abs(nbytes.mean() - grammar.expected_bytes()) < 0.3
    mc_bound = nats.sum() / (nbytes + 1).sum()
    assert abs(mc_bound - grammar.entropy_per_token()) < 0.01
    # Low enough for a tiny byte LM: perplexity ~1.45.
    assert 0.2 < grammar.entropy_per_token() < 0.6


def test_sample_log_prob_is_derivation_cost():
    rng = np.random.default_rng(1)
    text, nats = grammar.sample(rng)
    words = text.split()
    assert words[-1] == "."
    # Every word is in exactly one category, so the sentence determines its
    # derivation: nats is at least the cost of its word choices.
    assert nats > 0 and math.isfinite(nats)
