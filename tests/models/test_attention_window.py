"""attention_window limits what each position sees, for every impl and over the KV cache;
the einsum path sows its attention weights."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm.errors import ConfigError
from tests.models.helpers import init, japply, logit_input_jacobian, tiny, zero_cache

WINDOW = 3
LENGTH = 12


def _tokens(cfg, batch=2, length=LENGTH, seed=0):
    return jax.random.randint(jax.random.key(seed), (batch, length), 1, cfg.vocab_size)


def _reach_TxS(cfg) -> np.ndarray:
    """Bool [T, S]: whether output position t depends on input position s."""
    model, variables = init(cfg, 1)
    tokens = _tokens(cfg)
    jac_TxS = logit_input_jacobian(
        lambda: japply(model, variables, tokens), (*tokens.shape, cfg.d_model)
    )
    return np.asarray(jac_TxS) > 1e-7


@pytest.mark.parametrize("family", ["decoder", "encoder"])
def test_one_layer_sees_exactly_its_window(family):
    cfg = tiny(family=family, attention_window=WINDOW, max_len=LENGTH)
    t, s = np.meshgrid(np.arange(LENGTH), np.arange(LENGTH), indexing="ij")
    expected = np.abs(t - s) <= WINDOW
    if family == "decoder":
        expected &= s <= t
    np.testing.assert_array_equal(_reach_TxS(cfg), expected)


def test_two_layers_reach_two_windows_and_no_further():
    cfg = tiny(attention_window=WINDOW, num_layers=2, max_len=LENGTH)
    t, s = np.meshgrid(np.arange(LENGTH), np.arange(LENGTH), indexing="ij")
    np.testing.assert_array_equal(_reach_TxS(cfg), (s <= t) & (t - s <= 2 * WINDOW))


def test_changing_far_tokens_leaves_the_output_unchanged():
    cfg = tiny(attention_window=WINDOW, max_len=LENGTH)
    model, variables = init(cfg, 2)
    tokens = _tokens(cfg)
    last = LENGTH - 1
    # Tokens 0..last-WINDOW-1 are beyond the last position's window.
    far = tokens.at[:, : last - WINDOW].set(_tokens(cfg, length=last - WINDOW, seed=5))
    out, out_far = japply(model, variables, tokens), japply(model, variables, far)
    np.testing.assert_allclose(out_far[:, last], out[:, last], atol=1e-6)
    assert not np.allclose(out_far[:, last - 1], out[:, last - 1], atol=1e-4)


@pytest.mark.parametrize("family", ["decoder", "encoder", "encoder_decoder"])
def test_xla_matches_einsum_with_a_window(family):
    cfg = tiny(family=family, attention_window=WINDOW, max_len=LENGTH)
    model, variables = init(cfg, 3)
    xla_model, _ = init(cfg.replace(attention_impl="xla"), 3)
    args = (_tokens(cfg),) if family != "encoder_decoder" else (_tokens(cfg), _tokens(cfg, seed=1))
    np.testing.assert_allclose(
        japply(xla_model, variables, *args), japply(model, variables, *args), atol=2e-5
    )


@pytest.mark.parametrize("impl", ["einsum", "xla"])
def test_kv_cache_decoding_respects_the_window(impl):
    cfg = tiny(attention_window=WINDOW, max_len=LENGTH, attention_impl=impl)
    model, variables = init(cfg, 4)
    tokens = _tokens(cfg)
    full = japply(model, variables, tokens)
    cache = zero_cache(model, jnp.zeros_like(tokens))
    steps = []
    for t in range(LENGTH):
        out, mutated = model.apply(
            {"params": variables["params"], "cache": cache},
            tokens[:, t : t + 1],
            decode=True,
            mutable=["cache"],
        )
        cache = mutated["cache"]
        steps.append(out)
    np.testing.assert_allclose(jnp.concatenate(steps, axis=1), full, atol=2e-5)
    # Unwindowed attention over the same cache gives other logits beyond the window.
    unlimited_model, _ = init(cfg.replace(attention_window=0), 4)
    unlimited = japply(unlimited_model, variables, tokens)
    assert not np.allclose(unlimited[:, -1], full[:, -1], atol=1e-4)


def test_sown_attention_weights_are_distributions_within_the_window():
    cfg = tiny(attention_window=WINDOW, num_layers=2, max_len=LENGTH, num_kv_heads=2)
    model, variables = init(cfg, 5)
    tokens = _tokens(cfg)
    _, state = model.apply(variables, tokens, mutable=["intermediates"])
    weights = jax.tree.leaves(state["intermediates"])
    assert len(weights) == 2  # one per layer
    t, s = np.meshgrid(np.arange(LENGTH), np.arange(LENGTH), indexing="ij")
    for w_BxHxQxK in weights:
        w = np.asarray(w_BxHxQxK)
        assert w.shape == (2, cfg.num_heads, LENGTH, LENGTH)
        np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5)
        assert np.all(w[..., ~((s <= t) & (t - s <= WINDOW))] == 0)
    # Without a mutable 'intermediates', apply returns the logits alone: nothing is kept.
    assert isinstance(japply(model, variables, tokens), jax.Array)


def test_bad_window_is_a_config_error():
    with pytest.raises(ConfigError, match="attention_window=-1"):
        tiny(attention_window=-1)
