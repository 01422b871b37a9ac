"""The Pallas kernels (splash for TPU, pallas_gpu) compute what the einsum kernel does.

Everything runs in Pallas interpret mode on CPU (float32): outputs and gradients of the
kernels against attention.dot_product_attention (and jax.nn.dot_product_attention) for
every mask the model uses, full models against attention_impl='einsum', and the
shard_map layouts on 8 simulated devices (batch x heads, batch x context, context 8)
against the unsharded result.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType

from llm.models import ModelConfig
from llm.models.attention import (
    causal_mask,
    combine_masks,
    dot_product_attention,
    segment_mask,
    window_mask,
)
from llm.models.splash import pallas_attention, splash_block_sizes
from tests.models.helpers import init, japply, tiny, zero_cache

SPLASH = ModelConfig(attention_impl="splash", d_model=64, num_heads=4)
TOL = dict(atol=1e-5, rtol=1e-5)


def _qkv(b=2, length=256, h=4, n=4, k=32, seed=0):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(b, length, h, k))
    kv = rng.normal(size=(2, b, length, n, k))
    return tuple(jnp.asarray(x, jnp.float32) for x in (q, kv[0], kv[1]))


def _packed(length=256):
    """Two rows: three segments and a padding tail, and one full segment."""
    a, b, c = length * 3 // 8, length // 4, length // 5
    row = [1] * a + [2] * b + [3] * c + [0] * (length - a - b - c)
    return jnp.asarray([row, [1] * length], jnp.int32)


def _dense_mask(length, seg, causal, window):
    mask = causal_mask(length) if causal else None
    if window:
        mask = combine_masks(mask, window_mask(length, length, window))
    if seg is not None:
        mask = combine_masks(mask, segment_mask(seg, seg))
    return mask


def _einsum(q, k, v, seg, causal, window):
    return dot_product_attention(q, k, v, _dense_mask(q.shape[1], seg, causal, window))


def _xla(q, k, v, seg, causal, window):
    mask = _dense_mask(q.shape[1], seg, False, window)
    return jax.nn.dot_product_attention(q, k, v, mask=mask, is_causal=causal, implementation="xla")


def _value_and_grads(attend, q, k, v):
    """Output and d(sum(out * w))/d(q, k, v) for a fixed random w, jitted."""
    w = jax.random.normal(jax.random.key(1), q.shape) / np.sqrt(q.size)
    loss = lambda q, k, v: jnp.sum(attend(q, k, v) * w)  # noqa: E731
    out = jax.jit(attend)(q, k, v)
    return out, jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(q, k, v)


def _check(cfg, q, k, v, seg, causal, window, xla=True):
    got, got_grads = _value_and_grads(
        lambda q, k, v: pallas_attention(cfg, q, k, v, seg, causal=causal, window=window),
        q,
        k,
        v,
    )
    refs = [_einsum] + ([_xla] if xla else [])
    for ref in refs:
        want, want_grads = _value_and_grads(
            lambda q, k, v, ref=ref: ref(q, k, v, seg, causal, window), q, k, v
        )
        np.testing.assert_allclose(got, want, **TOL)
        for g, w in zip(got_grads, want_grads, strict=True):
            assert np.isfinite(np.asarray(g)).all()
            np.testing.assert_allclose(g, w, **TOL)


@pytest.mark.parametrize(
    "causal, window, packed, heads",
    [
        (True, 0, False, (4, 4)),  # causal decoder
        (False, 0, False, (4, 4)),  # bidirectional encoder
        (True, 0, True, (4, 4)),  # packed segments + padding tail
        (False, 0, True, (4, 4)),  # packed encoder rows
        (True, 0, True, (4, 2)),  # GQA
        (False, 0, True, (4, 1)),  # MQA
        (True, 40, True, (4, 2)),  # causal local window
        (False, 40, False, (4, 4)),  # bidirectional local window
    ],
)
def test_splash_matches_einsum_and_xla(causal, window, packed, heads):
    q, k, v = _qkv(h=heads[0], n=heads[1])
    _check(SPLASH, q, k, v, _packed() if packed else None, causal, window)


@pytest.mark.parametrize("causal", [True, False])
def test_splash_short_lengths_are_padded(causal):
    # 40 tokens (init, small evals): padded to the 128-lane width, padding never seen.
    q, k, v = _qkv(length=40, n=2)
    seg = jnp.asarray([[1] * 30 + [0] * 10, [1] * 20 + [2] * 20], jnp.int32)
    _check(SPLASH, q, k, v, None, causal, 0, xla=False)
    _check(SPLASH, q, k, v, seg, causal, 0, xla=False)


def test_splash_padding_queries_are_finite():
    # A query whose segment id no key has (fully masked row): finite, as einsum's uniform row.
    q, k, v = _qkv(length=128)
    seg = jnp.asarray([[1] * 128, [1] * 64 + [0] * 64], jnp.int32)
    out, grads = _value_and_grads(
        lambda q, k, v: pallas_attention(SPLASH, q, k, v, seg, causal=False), q, k, v
    )
    assert all(np.isfinite(np.asarray(x)).all() for x in (out, *grads))


@pytest.mark.parametrize("causal, packed", [(True, True), (False, False)])
def test_pallas_gpu_matches_einsum(causal, packed):
    # GPU flash attention (Triton) in interpret mode; GQA through repeated kv heads.
    cfg = SPLASH.replace(attention_impl="pallas_gpu")
    q, k, v = _qkv(length=128, n=2)
    _check(cfg, q, k, v, _packed(128) if packed else None, causal, 0)


def test_block_sizes_auto_explicit_and_errors():
    auto = splash_block_sizes(SPLASH, 1536, 3072)
    assert (auto.block_q, auto.block_kv, auto.block_kv_compute) == (512, 512, 512)
    assert splash_block_sizes(SPLASH, 384, 384).block_q == 384
    cfg = SPLASH.replace(splash_block_q=256, splash_block_kv=1024, splash_block_kv_compute=256)
    blocks = splash_block_sizes(cfg, 1024, 2048)
    assert (blocks.block_q, blocks.block_kv, blocks.block_kv_compute) == (256, 1024, 256)
    assert (blocks.block_q_dkv, blocks.block_kv_dkv, blocks.block_kv_dq) == (256, 1024, 1024)
    assert splash_block_sizes(cfg, 128, 128).block_kv == 128  # clipped to the length
    with pytest.raises(ValueError, match=r"model.splash_block_q=256 does not divide .* 384"):
        splash_block_sizes(cfg, 384, 384)
    with pytest.raises(ValueError, match="splash_block_kv=300 must be a multiple of 128"):
        SPLASH.replace(splash_block_kv=300)
    with pytest.raises(ValueError, match="splash_block_kv_compute=384 must divide"):
        SPLASH.replace(splash_block_kv=512, splash_block_kv_compute=384)
    with pytest.raises(ValueError, match="'pallas_gpu' has no local window"):
        SPLASH.replace(attention_impl="pallas_gpu", attention_window=8)
    with pytest.raises(ValueError, match="has no attention dropout"):
        SPLASH.replace(attention_dropout_rate=0.1)
    q, k, v = _qkv(length=384)
    with pytest.raises(ValueError, match="splash_block_q=256 does not divide"):
        pallas_attention(cfg, q, k, v, None, causal=True)


def test_fused_backward_matches_einsum():
    q, k, v = _qkv(n=2)
    _check(SPLASH.replace(splash_fused_bwd=True), q, k, v, _packed(), True, 0, xla=False)


# Full models: same parameters, attention_impl='splash' vs 'einsum'.


def _logits(cfg, *args, seed=3, **kwargs):
    model, variables = init(cfg, seed)
    splash_model, _ = init(cfg.replace(attention_impl="splash"), seed)
    apply = lambda m: jax.jit(lambda v, *a: m.apply(v, *a, **kwargs))  # noqa: E731
    return apply(model)(variables, *args), apply(splash_model)(variables, *args)


def test_decoder_splash_matches_einsum():
    cfg = tiny(max_len=128, position="rotary", num_kv_heads=2, attention_window=48)
    tokens = jax.random.randint(jax.random.key(0), (2, 128), 1, cfg.vocab_size)
    einsum, splash = _logits(cfg, tokens, segment_ids=_packed(128))
    np.testing.assert_allclose(splash, einsum, **TOL)


def test_encoder_splash_matches_einsum():
    cfg = tiny(family="encoder", type_vocab_size=2, max_len=128)
    tokens = jax.random.randint(jax.random.key(1), (2, 128), 1, cfg.vocab_size)
    einsum, splash = _logits(cfg, tokens, segment_ids=_packed(128))
    np.testing.assert_allclose(splash, einsum, **TOL)


@pytest.mark.slow
def test_splash_falls_back_for_decode_and_cross_attention():
    # The cached decode step and cross-attention run on the xla path.
    cfg = tiny(position="rotary", attention_impl="splash")
    model, variables = init(cfg, 6)
    tokens = jax.random.randint(jax.random.key(2), (2, 8), 1, cfg.vocab_size)
    full = japply(model, variables, tokens)
    cache = zero_cache(model, jnp.zeros_like(tokens))
    steps = []
    for t in range(tokens.shape[1]):
        out, mutated = model.apply(
            {"params": variables["params"], "cache": cache},
            tokens[:, t : t + 1],
            decode=True,
            mutable=["cache"],
        )
        cache = mutated["cache"]
        steps.append(out)
    np.testing.assert_allclose(jnp.concatenate(steps, axis=1), full, atol=2e-5)

    s2s = tiny(family="encoder_decoder", position="sinusoidal", max_len=128)
    src = jax.random.randint(jax.random.key(3), (2, 128), 1, s2s.vocab_size)
    tgt = jax.random.randint(jax.random.key(4), (2, 128), 1, s2s.vocab_size)
    einsum, splash = _logits(s2s, src.at[1, 100:].set(s2s.pad_id), tgt)
    np.testing.assert_allclose(splash, einsum, **TOL)


# Sharded: shard_map over 8 simulated devices equals the single-device result.

_RULES = (
    ("act_batch", ("data", "fsdp")),
    ("act_len", "context"),
    ("act_heads", "tensor"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
)


def _sharded_check(shape, length, heads, causal, window, packed, rules=_RULES):
    names = ("data", "fsdp", "context", "tensor")
    mesh = jax.make_mesh(shape, names, axis_types=(AxisType.Auto,) * 4)
    q, k, v = _qkv(length=length, h=heads[0], n=heads[1])
    seg = _packed(length) if packed else None
    attend = lambda q, k, v: pallas_attention(  # noqa: E731
        SPLASH, q, k, v, seg, causal=causal, window=window
    )
    want, want_grads = _value_and_grads(attend, q, k, v)
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        got, got_grads = _value_and_grads(attend, q, k, v)
    np.testing.assert_allclose(got, want, **TOL)
    for g, w in zip(got_grads, want_grads, strict=True):
        np.testing.assert_allclose(g, w, **TOL)
    # And the unsharded kernel is einsum's (tested above for these masks).
    np.testing.assert_allclose(want, _einsum(q, k, v, seg, causal, window), **TOL)


def test_sharded_data_x_tensor():
    _sharded_check((2, 1, 1, 4), 128, (8, 4), True, 0, True)


def test_sharded_mqa_with_replicated_kv_heads():
    # kv_heads unmapped while query heads split: each shard slices the kv heads it uses.
    rules = tuple(r for r in _RULES if r[0] != "kv_heads")
    _sharded_check((2, 1, 1, 4), 128, (8, 2), False, 0, True, rules=rules)


def test_sharded_data_x_context():
    _sharded_check((2, 1, 4, 1), 512, (4, 2), True, 0, True)


@pytest.mark.slow
def test_sharded_context_8_local_window():
    _sharded_check((1, 1, 8, 1), 1024, (2, 1), True, 100, True)
    _sharded_check((1, 1, 8, 1), 1024, (2, 2), False, 100, False)


def test_context_shards_need_lane_multiples():
    mesh = jax.make_mesh(
        (1, 1, 8, 1), ("data", "fsdp", "context", "tensor"), axis_types=(AxisType.Auto,) * 4
    )
    q, k, v = _qkv(length=256)
    with jax.set_mesh(mesh), nn.logical_axis_rules(_RULES):
        with pytest.raises(ValueError, match="multiples of 128, got 32"):
            jax.jit(lambda q, k, v: pallas_attention(SPLASH, q, k, v, None, causal=True))(q, k, v)
