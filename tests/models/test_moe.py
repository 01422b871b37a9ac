"""The MoE block against a per-expert reference; drops, auxiliary losses and the model wiring."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm import models
from llm.models.moe import MoE, capacity_of, load_balance_loss, route
from tests.models.helpers import zero_cache

CFG = models.ModelConfig(
    family="decoder",
    vocab_size=64,
    d_model=16,
    num_heads=2,
    d_ff=48,
    num_layers=2,
    max_len=16,
    position="rotary",
    norm="rmsnorm",
    activation="swiglu",
    use_bias=False,
    tie_embeddings=False,
    num_experts=4,
    experts_per_token=2,
    expert_d_ff=24,
)


def _reference(params, x_BxLxD, cfg):
    """Every token through every expert in a Python loop, mixed by its top-k weights."""
    p = nn.meta.unbox(params)
    x = np.asarray(x_BxLxD, np.float64).reshape(-1, cfg.d_model)
    logits = x @ np.asarray(p["router"]["kernel"], np.float64)
    weights, experts, _ = route(jnp.asarray(logits, jnp.float32), cfg)
    weights, experts = np.asarray(weights, np.float64), np.asarray(experts)
    y = np.zeros_like(x)
    for e in range(cfg.num_experts):
        wi, wg, wo = (np.asarray(p[n][e], np.float64) for n in ("wi", "wg", "wo"))
        gate = x @ wg
        out = ((gate / (1 + np.exp(-gate))) * (x @ wi)) @ wo
        gate_T = np.sum(np.where(experts == e, weights, 0.0), axis=-1)
        y += gate_T[:, None] * out
    if cfg.num_shared_experts:
        s = p["shared"]
        gate = x @ np.asarray(s["wg"]["kernel"], np.float64)
        y += ((gate / (1 + np.exp(-gate))) * (x @ np.asarray(s["wi"]["kernel"]))) @ np.asarray(
            s["wo"]["kernel"]
        )
    return y.reshape(x_BxLxD.shape)


def _apply(cfg, x, params=None):
    layer = MoE(cfg)
    if params is None:
        params = layer.init(jax.random.key(0), x)["params"]
    y, sown = layer.apply({"params": params}, x, mutable=["moe"])
    return params, y, {k: v[0] for k, v in sown["moe"].items()}


X = jax.random.normal(jax.random.key(1), (3, 8, CFG.d_model))


@pytest.mark.parametrize(
    "changes",
    [
        dict(moe_dispatch="dropless"),
        # Capacity factor E / k gives every expert L slots: nothing can overflow.
        dict(moe_dispatch="capacity", capacity_factor=2.0),
        dict(moe_dispatch="dropless", num_shared_experts=2, router_renormalize=False),
        dict(moe_dispatch="dropless", router_scores="sigmoid", router_scale=2.5),
        dict(moe_dispatch="capacity", capacity_factor=4.0, experts_per_token=1),
    ],
)
def test_moe_equals_per_expert_reference(changes):
    cfg = CFG.replace(**changes)
    params, y, sown = _apply(cfg, X)
    np.testing.assert_allclose(np.asarray(y), _reference(params, X, cfg), atol=1e-5, rtol=1e-5)
    assert float(sown["dropped_fraction"]) == 0.0
    np.testing.assert_allclose(float(jnp.sum(sown["expert_load"])), 1.0, rtol=1e-6)


def _skewed_params(cfg):
    """Router that ranks experts 0 > 1 > 2 > 3 for every token (all inputs positive)."""
    params, _, _ = _apply(cfg, X)
    params = nn.meta.unbox(params)
    kernel = np.zeros((cfg.d_model, cfg.num_experts), np.float32)
    kernel[:, : cfg.num_experts] = np.linspace(3.0, 0.0, cfg.num_experts)
    return {**params, "router": {"kernel": jnp.asarray(kernel)}}


def test_dropless_drops_nothing_when_every_token_picks_the_same_experts():
    cfg = CFG.replace(moe_dispatch="dropless")
    x = jnp.abs(X) + 0.1
    params = _skewed_params(cfg)
    _, y, sown = _apply(cfg, x, params)
    np.testing.assert_allclose(np.asarray(y), _reference(params, x, cfg), atol=1e-5, rtol=1e-5)
    assert float(sown["dropped_fraction"]) == 0.0
    np.testing.assert_allclose(np.asarray(sown["expert_load"]), [0.5, 0.5, 0.0, 0.0])


def test_capacity_drops_what_the_capacity_implies():
    # Every token's choices are experts 0 and 1; each gets C = ceil(1.0 * 2 * 8 / 4) = 4
    # slots per sequence, so positions 0-3 keep both choices and 4-7 keep none.
    cfg = CFG.replace(moe_dispatch="capacity", capacity_factor=1.0)
    assert capacity_of(cfg, 8) == 4
    x = jnp.abs(X) + 0.1
    params = _skewed_params(cfg)
    _, y, sown = _apply(cfg, x, params)
    np.testing.assert_allclose(float(sown["dropped_fraction"]), 0.5)
    reference = _reference(params, x, cfg)
    np.testing.assert_allclose(np.asarray(y[:, :4]), reference[:, :4], atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(y[:, 4:]), 0.0, atol=1e-7)


def test_capacity_keeps_the_earliest_tokens():
    # C = ceil(0.5 * 2 * 8 / 4) = 2 slots: experts 0 and 1 keep positions 0 and 1.
    cfg = CFG.replace(moe_dispatch="capacity", capacity_factor=0.5)
    assert capacity_of(cfg, 8) == 2
    x = jnp.abs(X) + 0.1
    params = _skewed_params(cfg)
    _, y, sown = _apply(cfg, x, params)
    np.testing.assert_allclose(float(sown["dropped_fraction"]), 12 / 16)
    np.testing.assert_allclose(np.asarray(y[:, 2:]), 0.0, atol=1e-7)


@pytest.mark.parametrize("dispatch", ["dropless", "capacity"])
def test_moe_decoder_is_causal_even_when_tokens_drop(dispatch):
    # A capacity so small that most tokens drop: drops must depend on earlier tokens only.
    cfg = CFG.replace(moe_dispatch=dispatch, capacity_factor=0.5, d_model=16)
    model = models.build_model(cfg)
    variables = models.init_variables(cfg, jax.random.key(3))
    tokens = jax.random.randint(jax.random.key(4), (1, 8), 0, 64)
    # (ragged_dot has no vmap rule for jax.jacrev: compare perturbed forwards instead.)
    forward = jax.jit(model.apply)
    logits = forward(variables, tokens)
    for t in (2, 5):
        changed = forward(variables, tokens.at[0, t].set((tokens[0, t] + 1) % 64))
        np.testing.assert_allclose(changed[:, :t], logits[:, :t], atol=1e-6, rtol=0)
        assert float(jnp.abs(changed[:, t:] - logits[:, t:]).max()) > 1e-3


def test_load_balance_loss_is_one_at_uniform_routing_and_its_minimum():
    tokens, num_experts = 64, 4
    uniform_probs = jnp.full((tokens, num_experts), 1 / num_experts)
    balanced = jnp.arange(tokens)[:, None] % num_experts
    assert float(load_balance_loss(uniform_probs, balanced)) == pytest.approx(1.0)
    # Everything on expert 0 with all the probability there: E.
    collapsed = jnp.zeros((tokens, 1), jnp.int32)
    one_hot = jax.nn.one_hot(jnp.zeros(tokens, jnp.int32), num_experts)
    assert float(load_balance_loss(one_hot, collapsed)) == pytest.approx(num_experts)
    # Random routers never go below 1.
    for seed in range(20):
        logits = 3 * jax.random.normal(jax.random.key(seed), (tokens, num_experts))
        _, experts, probs = route(logits, CFG.replace(experts_per_token=1))
        assert float(load_balance_loss(probs, experts)) >= 1.0 - 1e-6


def test_decoder_has_dense_first_layers_and_counts_active_params():
    cfg = CFG.replace(num_layers=3, first_dense_layers=1, num_shared_experts=1)
    for scan in (False, True):
        layout = cfg.replace(scan_layers=scan)
        shapes = jax.eval_shape(
            lambda rng, c=layout: models.init_variables(c, rng), jax.random.key(0)
        )
        stack = nn.meta.unbox(shapes["params"])["stack"]
        assert stack["dense_layers_0"]["mlp"]["wi"]["kernel"].shape == (16, 48)
        layers = stack["layers"] if scan else stack["layers_1"]
        lead = (2,) if scan else ()
        assert layers["moe"]["wi"].shape == (*lead, 4, 16, 24)
        assert layers["moe"]["shared"]["wi"]["kernel"].shape == (*lead, 16, 24)
        # Unrolled MoE layers count from 0 after the dense ones: one scan either way.
        names = {"dense_layers_0", "layers"} if scan else {"dense_layers_0", "layers_0", "layers_1"}
        assert set(stack) == names
    total = models.count_params(cfg)
    idle = 2 * (4 - 2) * 3 * 16 * 24  # two MoE layers, two unrouted experts of 3 matrices
    assert models.count_active_params(cfg) == total - idle - 64 * 16  # untied input table


def test_train_step_adds_the_weighted_aux_loss():
    from llm.train.step import moe_summary

    cfg = CFG.replace(load_balance_loss_weight=0.1, router_z_loss_weight=0.01)
    model = models.build_model(cfg)
    batch = models.dummy_batch(cfg, 2, 8)
    batch["inputs"] = jax.random.randint(jax.random.key(2), (2, 8), 0, 64)
    variables = models.init_variables(cfg, jax.random.key(0), batch)
    _, sown = model.apply(variables, batch, method="loss_terms", mutable=["moe"])
    aux, metrics = moe_summary(sown["moe"])
    layers = [sown["moe"]["stack"][f"layers_{i}"]["moe"] for i in range(2)]
    expected = sum(0.1 * m["load_balance_loss"][0] + 0.01 * m["router_z_loss"][0] for m in layers)
    np.testing.assert_allclose(float(aux), float(expected), rtol=1e-6)
    assert metrics["moe/expert_load"].shape == (2, 4)
    np.testing.assert_allclose(np.asarray(metrics["moe/expert_load"]).sum(-1), [1.0, 1.0])
    assert float(metrics["moe/load_balance_loss"]) >= 1.0 - 1e-6


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            dict(experts_per_token=5),
            r"experts_per_token=5 must be an integer in \[1, num_experts=4\]",
        ),
        (dict(use_bias=True), "needs use_bias=False"),
        (dict(first_dense_layers=2), "first_dense_layers=2 leaves no MoE layer"),
        (dict(moe_dispatch="dropfree"), "moe_dispatch='dropfree' is not one of"),
        (dict(family="encoder"), "num_experts=4 is for family='decoder'"),
    ],
)
def test_bad_moe_configs_name_the_value(changes, message):
    with pytest.raises(ValueError, match=message):
        CFG.replace(**changes)


@pytest.mark.parametrize("scan", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_kv_cache_decoding_matches_the_full_forward(scan):
    cfg = CFG.replace(scan_layers=scan, first_dense_layers=1, num_layers=3)
    model = models.build_model(cfg)
    params = models.init_variables(cfg, jax.random.key(5))["params"]
    tokens = jax.random.randint(jax.random.key(6), (2, 8), 0, 64)
    full = model.apply({"params": params}, tokens)
    cache = zero_cache(model, jnp.zeros_like(tokens))
    outs = []
    for t in range(8):
        out, mutated = model.apply(
            {"params": params, "cache": cache}, tokens[:, t : t + 1], decode=True, mutable=["cache"]
        )
        cache = mutated["cache"]
        outs.append(out)
    np.testing.assert_allclose(jnp.concatenate(outs, axis=1), full, atol=1e-5, rtol=1e-5)
