"""Decoder: shapes, causality, segment masks, KV-cache decoding, dtypes, sharded init."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm.models import build_model, count_params, dummy_batch, init_variables
from tests.models.helpers import init, japply, logit_input_jacobian, tiny, zero_cache

B, L = 2, 8


def _tokens(cfg, b=B, length=L, seed=0):
    return jax.random.randint(jax.random.key(seed), (b, length), 1, cfg.vocab_size)


def test_shapes_and_loss_terms():
    cfg = tiny()
    model, variables = init(cfg)
    terms = japply(model, variables, dummy_batch(cfg, B, L), method="loss_terms")
    logits, targets, weights = terms["lm"]
    assert set(terms) == {"lm"}
    assert logits.shape == (B, L, cfg.vocab_size) and logits.dtype == jnp.float32
    assert targets.shape == weights.shape == (B, L)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        pytest.param(
            {"position": "rotary", "norm": "rmsnorm", "activation": "swiglu", "use_bias": False},
            marks=pytest.mark.slow,
        ),
        pytest.param(
            {"pre_norm": False, "position": "sinusoidal", "scan_layers": True, "remat": "full"},
            marks=pytest.mark.slow,
        ),
    ],
)
def test_causal_via_gradients(overrides):
    cfg = tiny(**overrides)
    model, variables = init(cfg, 1)
    tokens = _tokens(cfg)
    jac_TxS = logit_input_jacobian(lambda: model.apply(variables, tokens), (B, L, cfg.d_model))
    future = np.triu(np.ones((L, L), bool), k=1)
    assert np.all(np.asarray(jac_TxS)[future] == 0.0)
    assert np.all(np.asarray(jac_TxS)[~future] > 0.0)


def test_segment_mask_isolation():
    cfg = tiny(position="rotary")
    model, variables = init(cfg, 2)
    tokens = _tokens(cfg, b=1)
    seg = jnp.array([[1, 1, 1, 2, 2, 2, 2, 0]])
    pos = jnp.array([[0, 1, 2, 0, 1, 2, 3, 0]])
    packed = japply(model, variables, tokens, positions=pos, segment_ids=seg)
    # Each document alone gives the same logits as inside the packed row.
    alone1 = japply(model, variables, tokens[:, :3])
    alone2 = japply(model, variables, tokens[:, 3:7])
    np.testing.assert_allclose(packed[:, :3], alone1, atol=1e-5)
    np.testing.assert_allclose(packed[:, 3:7], alone2, atol=1e-5)
    assert np.all(np.isfinite(packed))
    jac_TxS = np.asarray(
        logit_input_jacobian(
            lambda: model.apply(variables, tokens, positions=pos, segment_ids=seg),
            (1, L, cfg.d_model),
        )
    )
    s = np.asarray(seg[0])
    other = s[:, None] != s[None, :]
    real = (s != 0)[:, None] & (s != 0)[None, :]
    assert np.all(jac_TxS[other] == 0.0)
    assert np.all(jac_TxS[real & ~other & np.tril(np.ones((L, L), bool))] > 0.0)


def decode_all(step, cache, tokens, prefill=0):
    """Optional prefill chunk, then one token at a time through step(cache, t)."""
    outs, i = [], 0
    if prefill:
        out, cache = step(cache, tokens[:, :prefill])
        outs.append(out)
        i = prefill
    while i < tokens.shape[1]:
        out, cache = step(cache, tokens[:, i : i + 1])
        outs.append(out)
        i += 1
    return jnp.concatenate(outs, axis=1)


@pytest.mark.parametrize(
    "overrides, prefill",
    [
        pytest.param({}, 0, marks=pytest.mark.slow),
        ({"position": "rotary", "num_kv_heads": 2, "norm": "rmsnorm", "activation": "swiglu"}, 3),
        pytest.param(
            {"position": "sinusoidal", "scan_layers": True, "pre_norm": False, "num_kv_heads": 1},
            0,
            marks=pytest.mark.slow,
        ),
    ],
)
def test_kv_cache_decode_matches_full_forward(overrides, prefill):
    cfg = tiny(**overrides)
    model, variables = init(cfg, 3)
    tokens = _tokens(cfg)
    full = japply(model, variables, tokens)
    cache = zero_cache(model, jnp.zeros_like(tokens))

    def step(cache, t):
        out, mut = model.apply(
            {"params": variables["params"], "cache": cache}, t, decode=True, mutable=["cache"]
        )
        return out, mut["cache"]

    incremental = decode_all(step, cache, tokens, prefill)
    np.testing.assert_allclose(incremental, full, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_bfloat16_compute_keeps_float32_logits():
    cfg = tiny(dtype="bfloat16", position="rotary")
    model, variables = init(cfg, 4)
    logits = japply(model, variables, _tokens(cfg))
    assert logits.dtype == jnp.float32 and np.all(np.isfinite(logits))
    assert jax.tree.leaves(variables["params"])[0].dtype == jnp.float32


@pytest.mark.slow
def test_dropout_uses_dropout_rng():
    cfg = tiny(dropout_rate=0.5, attention_dropout_rate=0.5)
    model, variables = init(cfg, 5)
    tokens = _tokens(cfg)

    @jax.jit
    def run(rng):
        return model.apply(variables, tokens, deterministic=False, rngs={"dropout": rng})

    a, b = run(jax.random.key(0)), run(jax.random.key(1))
    assert not np.allclose(a, b) and np.all(np.isfinite(a))
    np.testing.assert_allclose(japply(model, variables, tokens), japply(model, variables, tokens))


@pytest.mark.slow
def test_logical_axes_and_sharded_init():
    cfg = tiny(
        vocab_size=40, num_kv_heads=2, scan_layers=True, use_bias=False, tie_embeddings=False
    )
    abstract = jax.eval_shape(lambda r: init_variables(cfg, r), jax.random.key(0))
    is_spec = lambda x: isinstance(x, jax.sharding.PartitionSpec)  # noqa: E731
    specs = nn.get_partition_spec(abstract)
    names = {tuple(p) for p in jax.tree.leaves(specs["params"], is_leaf=is_spec)}
    assert ("vocab", "embed") in names and ("embed", "vocab") in names
    assert ("layers", "embed", "heads", "kv") in names
    assert ("layers", "embed", "kv_heads", "kv") in names
    assert ("layers", "heads", "kv", "embed") in names
    assert ("layers", "embed", "mlp") in names and ("layers", "norm") in names
    mesh = jax.make_mesh(
        (2, 2, 2), ("data", "fsdp", "tensor"), axis_types=(jax.sharding.AxisType.Auto,) * 3
    )
    rules = (
        ("act_batch", ("data", "fsdp")),
        ("embed", "fsdp"),
        ("mlp", "tensor"),
        ("heads", "tensor"),
        ("kv_heads", "tensor"),
        ("vocab", "tensor"),
        ("act_heads", "tensor"),
        ("act_mlp", "tensor"),
    )
    shardings = nn.logical_to_mesh_sharding(specs, mesh, rules)
    model = init(tiny())[0].clone(cfg=cfg)
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        variables = jax.jit(lambda r: init_variables(cfg, r), out_shardings=shardings)(
            jax.random.key(0)
        )
        batch = dummy_batch(cfg, 8, L)
        logits = jax.jit(lambda v, b: model.apply(v, b, method="loss_terms")["lm"][0])(
            variables, batch
        )
    assert logits.shape == (8, L, cfg.vocab_size)
    wq = variables["params"]["stack"]["layers"]["self_attn"]["query"].value
    assert wq.sharding.spec == jax.sharding.PartitionSpec(None, "fsdp", "tensor", None)


def test_count_params_matches_formula():
    cfg = tiny(num_layers=2)
    n = count_params(cfg)
    d, f, v, n_layers, p = 16, 32, 37, 2, 16
    # 4 attention matrices + biases, 2 MLP matrices + biases, 2 norms (scale, bias).
    per_layer = 4 * d * d + 4 * d + 2 * d * f + f + d + 4 * d
    assert n == v * d + p * d + n_layers * per_layer + 2 * d


@pytest.mark.parametrize("scan", [False, True])
def test_cache_layout(scan):
    cfg = tiny(num_layers=2, scan_layers=scan, num_kv_heads=2)
    model = build_model(cfg)
    shapes = jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.zeros((3, L), jnp.int32), decode=True)
    )["cache"]
    leaves = jax.tree.leaves(shapes)
    batch_axis = 1 if scan else 0
    assert all(x.shape[batch_axis] == 3 for x in leaves if x.ndim > 0)
    assert sum(x.ndim == 0 for x in leaves) == 1  # one shared decode index
    # Keys [B, N, K, S] and values [B, N, S, K] (llm/models/kv_cache.py), per layer.
    layers = (2,) if scan else ()
    flat = jax.tree_util.tree_flatten_with_path(shapes)[0]
    kv = {jax.tree_util.keystr(path[-1:]): x.shape for path, x in flat if x.ndim > 0}
    assert kv == {
        "['cached_key']": layers + (3, 2, 4, L),
        "['cached_value']": layers + (3, 2, L, 4),
    }
    assert sum(x.ndim > 0 for x in leaves) == (2 if scan else 4)
