"""Context parallelism (llm/models/context_parallel.py): ring and all-gather attention over a
sequence split on the `context` mesh axis give full attention's outputs and gradients."""

import functools
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm.errors import ConfigError
from llm.models import build_model, context_parallel, init_variables
from llm.models.attention import (
    causal_mask,
    combine_masks,
    dot_product_attention,
    segment_mask,
    window_mask,
)
from llm.models.config import ATTENTION_IMPLS
from llm.parallel.mesh import make_mesh
from llm.parallel.rules import resolve_rules
from tests.models.helpers import tiny

# Batch, length, query heads, kv heads (GQA), head size.
B, L, H, N, K = 4, 64, 4, 2, 8
MESHES = {
    "context8": dict(data=1, fsdp=1, context=8, tensor=1),
    "data2_context4": dict(data=2, fsdp=1, context=4, tensor=1),
}
TENSOR_MESH = {"data2_context2_tensor2": dict(data=2, fsdp=1, context=2, tensor=2)}
# (causal, window, zig-zag order)
CASES = {
    "causal": (True, 0, False),
    "causal_zigzag": (True, 0, True),
    "bidirectional": (False, 0, False),
    "window_zigzag": (True, 9, True),
    "window": (True, 9, False),
    "bidirectional_window": (False, 9, False),
}


def _segments() -> np.ndarray:
    """Packed rows: one segment, two, padding at the end, three segments and padding."""
    seg = np.ones((B, L), np.int32)
    seg[1, 20:] = 2
    seg[2, 50:] = 0
    seg[3, 10:30], seg[3, 30:60], seg[3, 60:] = 2, 3, 0
    return seg


@functools.cache
def _inputs(n: int = N):
    keys = jax.random.split(jax.random.key(0), 4)
    q = jax.random.normal(keys[0], (B, L, H, K))
    k = jax.random.normal(keys[1], (B, L, n, K))
    v = jax.random.normal(keys[2], (B, L, n, K))
    dout = jax.random.normal(keys[3], (B, L, H, K))
    return q, k, v, jnp.asarray(_segments()), dout


@functools.cache
def _reference(causal: bool, window: int, n: int = N):
    """Full attention with dense [L, L] masks (the einsum kernel): output and grads."""
    q, k, v, seg, dout = _inputs(n)
    mask = segment_mask(seg, seg)
    if causal:
        mask = combine_masks(mask, causal_mask(L))
    if window:
        mask = combine_masks(mask, window_mask(L, L, window))
    out, vjp = jax.vjp(lambda q, k, v: dot_product_attention(q, k, v, mask), q, k, v)
    return out, vjp(dout)


@functools.cache
def _sharded(mesh_name, mode, causal, window, zigzag, skip=True, kv_tile=4, n=N, rules="fsdp"):
    """Context attention on the mesh: output, grads (natural order) and the step's HLO text.

    Inputs and outputs stay split over the mesh (zig-zag order when asked, permuted
    outside the program), so the HLO holds only the attention's own collectives.
    """
    sizes = (MESHES | TENSOR_MESH)[mesh_name]
    order = context_parallel.zigzag_order(L, sizes["context"]) if zigzag else np.arange(L)
    q, k, v, seg, dout = (x[:, order] for x in _inputs(n))

    def fn(q, k, v, seg, dout):
        out, vjp = jax.vjp(
            lambda q, k, v: context_parallel.context_attention(
                q,
                k,
                v,
                seg,
                causal=causal,
                window=window,
                zigzag=zigzag,
                mode=mode,
                skip_masked=skip,
                kv_tile=kv_tile,
            ),
            q,
            k,
            v,
        )
        return out, vjp(dout)

    mesh = make_mesh(sizes)
    split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data", "context"))
    with jax.set_mesh(mesh), nn.logical_axis_rules(resolve_rules(rules)):
        jitted = jax.jit(fn, in_shardings=split, out_shardings=split)
        compiled = jitted.lower(q, k, v, seg, dout).compile()
        out, grads = compiled(q, k, v, seg, dout)
    natural = np.argsort(order)
    return out[:, natural], tuple(g[:, natural] for g in grads), compiled.as_text()


def _assert_matches(got, want):
    out, grads = got[:2]
    want_out, want_grads = want
    np.testing.assert_allclose(out, want_out, atol=1e-5, err_msg="output")
    for name, g, w in zip("qkv", grads, want_grads, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-5, err_msg=f"d{name}")


def _count(text: str, op: str) -> int:
    return len(re.findall(r"\b" + op + r"[-\w.]*\(", text))


@pytest.mark.parametrize("mode", context_parallel.MODES)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("mesh_name", MESHES)
def test_context_attention_matches_full_attention(mesh_name, case, mode):
    causal, window, zigzag = CASES[case]
    got = _sharded(mesh_name, mode, causal, window, zigzag)
    _assert_matches(got, _reference(causal, window))
    text = got[2]
    if mode == "ring":
        # Keys and values move around the ring; nothing is gathered.
        assert _count(text, "collective-permute") > 0 and _count(text, "all-gather") == 0
    else:
        assert _count(text, "all-gather") > 0 and _count(text, "reduce-scatter") > 0


@pytest.mark.parametrize("n", [2, 1])
def test_heads_split_over_tensor_axis_gqa_and_mqa(n):
    # fsdp_tp splits query heads (and kv heads when they divide) over `tensor`; MQA's one
    # kv head is repeated per query head.
    got = _sharded("data2_context2_tensor2", "ring", True, 0, True, n=n, rules="fsdp_tp")
    _assert_matches(got, _reference(True, 0, n))


@pytest.mark.parametrize("case", ["causal_zigzag", "window"])
def test_skipping_masked_blocks_changes_no_number(case):
    causal, window, zigzag = CASES[case]
    skipped = _sharded("context8", "ring", causal, window, zigzag)
    full = _sharded("context8", "ring", causal, window, zigzag, skip=False)
    np.testing.assert_allclose(skipped[0], full[0], atol=1e-6)
    for g_skip, g_full in zip(skipped[1], full[1], strict=True):
        np.testing.assert_allclose(g_skip, g_full, atol=1e-6)
    # The skip is a conditional per ring step (forward and backward); no skip, none.
    assert _count(skipped[2], "conditional") > 0 and _count(full[2], "conditional") == 0


def test_whole_block_kv_tile_matches_tiled():
    # kv_tile=4 above splits every block into tiles; one tile per block is the other path.
    whole = _sharded("data2_context4", "ring", True, 9, True, kv_tile=512)
    _assert_matches(whole, _reference(True, 9))


@pytest.mark.parametrize("shards", [1, 2, 4, 8])
def test_zigzag_permutation_round_trips_and_balances_causal_work(shards):
    x = jnp.arange(2 * L * 3).reshape(2, L, 3)
    order = context_parallel.zigzag_order(L, shards)
    zig = context_parallel.to_zigzag(x, shards)
    np.testing.assert_array_equal(zig, x[:, order])
    np.testing.assert_array_equal(context_parallel.from_zigzag(zig, shards), x)
    mask = jnp.arange(2 * 1 * L * 5).reshape(2, 1, L, 5)
    np.testing.assert_array_equal(
        context_parallel.to_zigzag(mask, shards, axis=2), mask[:, :, order]
    )
    c = L // (2 * shards)
    per_shard = order.reshape(shards, 2 * L // (2 * shards))
    for i, idx in enumerate(per_shard):
        assert sorted({t // c for t in idx}) == sorted({i, 2 * shards - 1 - i})
    # Causal work of shard i = keys its queries see = sum(index + 1): equal on every shard.
    work = (per_shard + 1).sum(axis=1)
    assert (work == work[0]).all()


def test_zigzag_needs_a_length_that_splits_into_2c_chunks():
    with pytest.raises(ConfigError, match="multiple of 16"):
        context_parallel.zigzag_order(40, 8)


# --- the models on a context mesh == one device -----------------------------------------

MODEL_L = 32


def _model_inputs():
    tokens = jax.random.randint(jax.random.key(1), (4, MODEL_L), 1, 37)
    seg = np.ones((4, MODEL_L), np.int32)
    seg[1, 10:], seg[2, 25:], seg[3, 5:20], seg[3, 20:] = 2, 0, 2, 0
    pos = np.tile(np.arange(MODEL_L, dtype=np.int32), (4, 1))
    pos[1, 10:], pos[3, 5:20] = np.arange(MODEL_L - 10), np.arange(15)
    return tokens, jnp.asarray(seg), jnp.asarray(pos)


def _on_mesh(cfg, sizes, *args, rules="fsdp", **kwargs):
    """(logits without a mesh, logits on the mesh, compiled HLO text) of the same params."""
    model = build_model(cfg)
    variables = init_variables(cfg, jax.random.key(0))
    want = jax.jit(lambda v, *a: model.apply(v, *a, **kwargs))(variables, *args)
    with jax.set_mesh(make_mesh(sizes)), nn.logical_axis_rules(resolve_rules(rules)):
        fn = jax.jit(lambda v, *a: model.apply(v, *a, **kwargs))
        compiled = fn.lower(variables, *args).compile()
        got = compiled(variables, *args)
    return want, got, compiled.as_text()


LLAMA = dict(
    position="rotary",
    num_kv_heads=2,
    norm="rmsnorm",
    activation="swiglu",
    use_bias=False,
    max_len=MODEL_L,
)


@pytest.mark.parametrize(
    "overrides, sizes",
    [
        ({}, MESHES["data2_context4"]),
        ({"context_attention": "all_gather"}, MESHES["context8"]),
        ({"context_load_balance": False, "attention_window": 5}, MESHES["data2_context4"]),
        pytest.param(
            {"position": "learned", "num_experts": 4},
            MESHES["data2_context4"],
            marks=pytest.mark.slow,
        ),
    ],
    ids=["ring_zigzag", "all_gather_zigzag", "ring_window_natural_order", "moe_learned"],
)
def test_decoder_on_a_context_mesh_gives_one_devices_logits(overrides, sizes):
    tokens, seg, pos = _model_inputs()
    cfg = tiny(**(LLAMA | overrides))
    want, got, text = _on_mesh(cfg, sizes, tokens, segment_ids=seg, positions=pos)
    np.testing.assert_allclose(got, want, atol=1e-5)
    if not cfg.is_moe:  # dropless MoE gathers its tokens itself
        gathers = _count(text, "all-gather")
        assert gathers > 0 if cfg.context_attention == "all_gather" else gathers == 0


@pytest.mark.slow
def test_encoder_and_encoder_decoder_on_a_context_mesh():
    tokens, seg, _ = _model_inputs()
    enc = tiny(family="encoder", type_vocab_size=2, max_len=MODEL_L)
    want, got, _ = _on_mesh(enc, MESHES["data2_context4"], tokens, segment_ids=seg)
    np.testing.assert_allclose(got, want, atol=1e-5)
    # Decoder self-attention in zig-zag order; cross-attention over the encoder's keys.
    s2s = tiny(family="encoder_decoder", position="sinusoidal", pre_norm=False, max_len=MODEL_L)
    src = tokens.at[1, 20:].set(s2s.pad_id)
    tgt = jax.random.randint(jax.random.key(2), (4, 16), 1, 37)
    want, got, _ = _on_mesh(s2s, MESHES["data2_context4"], src, tgt)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_decoding_on_a_context_mesh_uses_the_kv_cache_unsplit():
    # The KV cache path keeps the plain kernel (XLA partitions it); same logits as no mesh.
    cfg = tiny(**LLAMA)
    model = build_model(cfg)
    variables = init_variables(cfg, jax.random.key(0))
    prompt = jax.random.randint(jax.random.key(3), (4, 8), 1, 37)
    cache = jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.zeros((4, MODEL_L), jnp.int32), decode=True)
    )["cache"]
    cache = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), cache)

    def prefill_and_step(variables, cache):
        logits, mutated = model.apply(
            {**variables, "cache": cache}, prompt, decode=True, mutable=["cache"]
        )
        step, _ = model.apply(
            {**variables, **mutated}, prompt[:, :1], decode=True, mutable=["cache"]
        )
        return logits, step

    want = jax.jit(prefill_and_step)(variables, cache)
    sizes = MESHES["data2_context4"]
    with jax.set_mesh(make_mesh(sizes)), nn.logical_axis_rules(resolve_rules("fsdp")):
        got = jax.jit(prefill_and_step)(variables, cache)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-5)


def _trace_on_context_mesh(cfg, length=MODEL_L):
    model = build_model(cfg)
    tokens = jnp.ones((4, length), jnp.int32)
    with (
        jax.set_mesh(make_mesh(MESHES["data2_context4"])),
        nn.logical_axis_rules(resolve_rules("fsdp")),
    ):
        jax.eval_shape(lambda: model.init(jax.random.key(0), tokens))


def test_refusals_name_the_fix():
    with pytest.raises(ConfigError, match="attention_dropout_rate=0"):
        _trace_on_context_mesh(tiny(**LLAMA, attention_dropout_rate=0.1))
    with pytest.raises(ConfigError, match="moe_dispatch='dropless'"):
        _trace_on_context_mesh(tiny(**LLAMA, num_experts=4, moe_dispatch="capacity"))
    with pytest.raises(ConfigError, match="multiple of 8"):
        _trace_on_context_mesh(tiny(**LLAMA), length=28)
    with pytest.raises(ConfigError, match="context_attention='rings' is not one of"):
        tiny(context_attention="rings")


@pytest.mark.skipif("splash" not in ATTENTION_IMPLS, reason="no splash kernel in this checkout")
def test_ring_with_splash_is_a_config_error():
    with pytest.raises(ConfigError, match="context_attention='auto'"):
        tiny(attention_impl="splash", context_attention="ring")
