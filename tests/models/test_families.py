"""Encoder (BERT), EncoderDecoder (AIAYN), GQA/MQA, rotary, scan/remat equivalence."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm.models import dummy_batch
from llm.models.positions import apply_rotary, rope_inv_freq, sinusoidal
from tests.models.helpers import init, japply, logit_input_jacobian, tiny, zero_cache

B, L, LT = 2, 6, 5


def _tokens(cfg, b=B, length=L, seed=0):
    return jax.random.randint(jax.random.key(seed), (b, length), 1, cfg.vocab_size)


def _bert(**kw):
    base = dict(
        family="encoder", pre_norm=False, activation="gelu_exact", type_vocab_size=2, num_layers=1
    )
    base.update(kw)
    return tiny(**base)


def _aiayn(**kw):
    base = dict(
        family="encoder_decoder",
        pre_norm=False,
        position="sinusoidal",
        activation="relu",
        scale_embeddings=True,
        num_layers=1,
    )
    base.update(kw)
    return tiny(**base)


def test_encoder_is_bidirectional_and_segment_masked():
    cfg = _bert()
    model, variables = init(cfg)
    tokens = _tokens(cfg)
    jac_TxS = np.asarray(logit_input_jacobian(lambda: model.apply(variables, tokens), (B, L, 16)))
    assert np.all(jac_TxS > 0.0)  # every position sees every other, both ways
    seg = jnp.array([[1, 1, 1, 2, 2, 0], [1, 1, 1, 1, 1, 1]])
    jac_TxS = np.asarray(
        logit_input_jacobian(lambda: model.apply(variables, tokens, segment_ids=seg), (B, L, 16))
    )
    s = np.asarray(seg[0])
    assert np.all(jac_TxS[s[:, None] != s[None, :]] == 0.0)
    assert np.all(jac_TxS[s[:, None] == s[None, :]] > 0.0)


def test_bert_loss_terms_mlm_and_nsp():
    cfg = _bert()
    model, variables = init(cfg)
    p = variables["params"]
    assert {"pooler", "nsp_classifier", "mlm_transform", "mlm_norm", "mlm_bias"} <= set(p)
    assert "type_embed" in p["embedding"] and "embed_norm" in p["embedding"]
    batch = dummy_batch(cfg, B, L)
    terms = japply(model, variables, batch, method="loss_terms")
    assert set(terms) == {"mlm", "nsp"}
    logits, targets, weights = terms["nsp"]
    assert logits.shape == (B, 2) and logits.dtype == jnp.float32
    assert targets.shape == weights.shape == (B,) and np.all(weights == 1.0)
    assert terms["mlm"][0].shape == (B, L, cfg.vocab_size)
    del batch["nsp_labels"]
    assert set(japply(model, variables, batch, method="loss_terms")) == {"mlm"}
    # Token types change the output.
    tokens = _tokens(cfg)
    a = japply(model, variables, tokens)
    b = japply(model, variables, tokens, token_type_ids=jnp.ones_like(tokens))
    assert not np.allclose(a, b)


def test_encoder_decoder_masks():
    cfg = _aiayn()
    model, variables = init(cfg)
    src, tgt = _tokens(cfg, length=L), _tokens(cfg, length=LT, seed=1)
    src_seg = jnp.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])

    def run():
        return model.apply(variables, src, tgt, encoder_segment_ids=src_seg)

    # Decoder: causal (delta only matches the decoder-input shape [B, LT, D]).
    jac_TxS = np.asarray(logit_input_jacobian(run, (B, LT, 16)))
    future = np.triu(np.ones((LT, LT), bool), k=1)
    assert np.all(jac_TxS[future] == 0.0) and np.all(jac_TxS[~future] > 0.0)
    # Cross-attention: no decoder logit depends on padded encoder positions.
    jac_TxS = np.asarray(logit_input_jacobian(run, (B, L, 16)))
    assert np.all(jac_TxS[:, 4:] == 0.0) and np.all(jac_TxS[:, :4] > 0.0)
    # Padding by token id 0 when no segment ids are given is the same mask.
    src0 = src.at[0, 4:].set(0)
    np.testing.assert_allclose(
        japply(model, variables, src0, tgt)[0],
        japply(model, variables, src, tgt, encoder_segment_ids=src_seg)[0],
        atol=1e-5,
    )


@pytest.mark.slow
def test_encoder_decoder_packed_segments():
    cfg = _aiayn(position="learned")
    model, variables = init(cfg)
    src, tgt = _tokens(cfg, b=1, length=L), _tokens(cfg, b=1, length=LT, seed=1)
    src_seg, tgt_seg = jnp.array([[1, 1, 1, 2, 2, 2]]), jnp.array([[1, 1, 2, 2, 2]])
    src_pos, tgt_pos = jnp.array([[0, 1, 2, 0, 1, 2]]), jnp.array([[0, 1, 0, 1, 2]])
    packed = japply(
        model,
        variables,
        src,
        tgt,
        encoder_segment_ids=src_seg,
        decoder_segment_ids=tgt_seg,
        encoder_positions=src_pos,
        decoder_positions=tgt_pos,
    )
    second = japply(model, variables, src[:, 3:], tgt[:, 2:])
    np.testing.assert_allclose(packed[:, 2:], second, atol=1e-5)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        pytest.param(
            {"position": "rotary", "num_kv_heads": 2, "scan_layers": True}, marks=pytest.mark.slow
        ),
    ],
)
def test_encoder_decoder_kv_cache_matches_full_forward(overrides):
    cfg = _aiayn(**overrides)
    model, variables = init(cfg, 1)
    src, tgt = _tokens(cfg, length=L), _tokens(cfg, length=LT, seed=1)
    src = src.at[1, 4:].set(0)  # padding in one row
    full = japply(model, variables, src, tgt)
    params = {"params": variables["params"]}
    encoded = japply(model, params, src, method="encode")
    cache = zero_cache(model, jnp.zeros_like(src), jnp.zeros_like(tgt))

    def step(cache, t):
        out, mut = model.apply(
            {**params, "cache": cache},
            encoded,
            src,
            t,
            decode=True,
            mutable=["cache"],
            method="decode",
        )
        return out, mut["cache"]

    outs = []
    for i in range(LT):
        out, cache = step(cache, tgt[:, i : i + 1])
        outs.append(out)
    np.testing.assert_allclose(jnp.concatenate(outs, 1), full, atol=1e-5, rtol=1e-5)


def _expand_kv(params, num_heads):
    """Repeats each KV head's kernels/biases so a GQA/MQA layer becomes an MHA layer."""

    def fix(path, x):
        name = path[-1].key
        if name in ("key", "value"):
            return jnp.repeat(x, num_heads // x.shape[-2], axis=-2)
        if name in ("key_bias", "value_bias"):
            return jnp.repeat(x, num_heads // x.shape[-2], axis=-2)
        return x

    return jax.tree_util.tree_map_with_path(fix, params)


@pytest.mark.parametrize("kv_heads", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_gqa_and_mqa_equal_mha_with_shared_kv(kv_heads):
    cfg = tiny(num_kv_heads=kv_heads, num_layers=1, position="rotary")
    model, variables = init(cfg)
    mha_params = _expand_kv(nn.meta.unbox(variables["params"]), cfg.num_heads)
    mha_model, _ = init(cfg.replace(num_kv_heads=None))
    tokens = _tokens(cfg)
    np.testing.assert_allclose(
        japply(model, variables, tokens),
        japply(mha_model, {"params": mha_params}, tokens),
        atol=1e-5,
    )
    q = nn.meta.unbox(variables["params"])["stack"]["layers_0"]["self_attn"]["key"]
    assert q.shape == (16, kv_heads, 4)


def test_rotary_depends_only_on_relative_position():
    k1, k2 = jax.random.split(jax.random.key(0))
    q = jax.random.normal(k1, (1, 5, 2, 8))
    k = jax.random.normal(k2, (1, 5, 2, 8))
    pos = jnp.arange(5)[None]

    def scores(shift):
        qr = apply_rotary(q, pos + shift, rope_inv_freq(8, 10000.0))
        kr = apply_rotary(k, pos + shift, rope_inv_freq(8, 10000.0))
        return jnp.einsum("blhk,bshk->bhls", qr, kr)

    np.testing.assert_allclose(scores(0), scores(37), atol=1e-4)
    assert not np.allclose(scores(0), jnp.einsum("blhk,bshk->bhls", q, k), atol=1e-3)
    # A whole rotary model is invariant to shifting all positions.
    cfg = tiny(position="rotary", num_layers=1)
    model, variables = init(cfg)
    tokens = _tokens(cfg)
    positions = jnp.broadcast_to(jnp.arange(L), (B, L))
    np.testing.assert_allclose(
        japply(model, variables, tokens, positions=positions),
        japply(model, variables, tokens, positions=positions + 5),
        atol=1e-4,
    )


def test_sinusoidal_matches_paper_formula():
    pe = np.asarray(sinusoidal(jnp.arange(7)[None], 8))[0]
    p, i = 5, 1
    np.testing.assert_allclose(pe[p, 2 * i], np.sin(p / 10000 ** (2 * i / 8)), rtol=1e-5)
    np.testing.assert_allclose(pe[p, 2 * i + 1], np.cos(p / 10000 ** (2 * i / 8)), rtol=1e-5)


def _stack_layers(params, n):
    """Unrolled params (layers_0..n-1) -> scanned params ('layers' with a leading axis)."""
    if not isinstance(params, dict):
        return params
    out = {}
    for key, value in params.items():
        if key == "layers_0":
            out["layers"] = jax.tree.map(
                lambda *xs: jnp.stack(xs), *[params[f"layers_{i}"] for i in range(n)]
            )
        elif not key.startswith("layers_"):
            out[key] = _stack_layers(value, n)
    return out


@pytest.mark.parametrize(
    "cfg_fn",
    [
        lambda: tiny(num_layers=2, dropout_rate=0.0),
        pytest.param(lambda: _bert(num_layers=2), marks=pytest.mark.slow),
        pytest.param(lambda: _aiayn(num_layers=2), marks=pytest.mark.slow),
    ],
    ids=["decoder", "encoder", "encoder_decoder"],
)
def test_scan_equals_unrolled(cfg_fn):
    cfg = cfg_fn().replace(num_layers=2)
    model, variables = init(cfg)
    scan_model, scan_vars = init(cfg.replace(scan_layers=True, remat="dots"))
    params = nn.meta.unbox(variables["params"])
    stacked = _stack_layers(params, 2)
    assert jax.tree.structure(stacked) == jax.tree.structure(nn.meta.unbox(scan_vars["params"]))
    batch = dummy_batch(cfg, B, L, LT)
    batch = {
        k: (
            v
            if k.endswith(("segment_ids", "positions", "weights")) or k == "nsp_labels"
            else jax.random.randint(jax.random.key(3), v.shape, 1, cfg.vocab_size)
        )
        for k, v in batch.items()
    }

    def loss(model, p):
        terms = model.apply({"params": p}, batch, method="loss_terms")
        return sum(jnp.mean(t[0] ** 2) for t in terms.values())

    l1, g1 = jax.value_and_grad(lambda p: loss(model, p))(params)
    l2, g2 = jax.value_and_grad(lambda p: loss(scan_model, p))(stacked)
    np.testing.assert_allclose(l1, l2, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(_stack_layers(g1, 2)), jax.tree.leaves(g2), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.slow
def test_embedding_sharing_and_scaling():
    cfg = _aiayn()
    _, variables = init(cfg)
    p = variables["params"]
    assert "token_embed" in p and "lm_head" not in p.get("head", {})
    untied = _aiayn(tie_embeddings=False)
    _, v2 = init(untied)
    assert {"encoder_token_embed", "decoder_token_embed"} <= set(v2["params"])
    assert "lm_head" in v2["params"]["head"]
    # sqrt(d_model) scaling: with zero positions, embeddings are table * 4 (d = 16).
    model, variables = init(tiny(scale_embeddings=True, position="none", num_layers=1))
    tokens = jnp.array([[3, 5]])
    _, inter = japply(
        model, variables, tokens, capture_intermediates=True, mutable=["intermediates"]
    )
    x = inter["intermediates"]["embedding"]["__call__"][0]
    table = nn.meta.unbox(variables["params"])["token_embed"]["embedding"]
    np.testing.assert_allclose(x[0], table[jnp.array([3, 5])] * 4.0, rtol=1e-6)
