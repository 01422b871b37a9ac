"""attention_impl='xla' (jax.nn.dot_product_attention) computes what the einsum kernel does.

'cudnn' runs the same call with implementation='cudnn'; it needs an NVIDIA GPU, so here
only its config checks are tested (the GPU suite of launch.bench exercises it).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm.models import ModelConfig
from tests.models.helpers import init, japply, tiny, zero_cache


def _same_params_logits(cfg: ModelConfig, *args, **kwargs):
    model, variables = init(cfg, 5)
    xla_model, _ = init(cfg.replace(attention_impl="xla"), 5)
    return japply(model, variables, *args, **kwargs), japply(xla_model, variables, *args, **kwargs)


def _tokens(cfg, batch=2, length=12, seed=0):
    return jax.random.randint(jax.random.key(seed), (batch, length), 1, cfg.vocab_size)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        pytest.param(
            {"position": "rotary", "num_kv_heads": 2, "norm": "rmsnorm", "activation": "swiglu"},
            marks=pytest.mark.slow,
        ),
    ],
)
def test_decoder_xla_matches_einsum_with_packed_segments(overrides):
    cfg = tiny(**overrides)
    tokens = _tokens(cfg)
    segments = jnp.array([[1] * 5 + [2] * 7, [1] * 9 + [0] * 3])
    einsum, xla = _same_params_logits(cfg, tokens, segment_ids=segments)
    real = np.asarray(segments) > 0
    np.testing.assert_allclose(np.asarray(xla)[real], np.asarray(einsum)[real], atol=2e-5)


@pytest.mark.slow
def test_encoder_and_encoder_decoder_xla_match_einsum():
    enc = tiny(family="encoder", type_vocab_size=2)
    tokens = _tokens(enc)
    segments = jnp.array([[1] * 12, [1] * 8 + [0] * 4])
    einsum, xla = _same_params_logits(enc, tokens, segment_ids=segments)
    np.testing.assert_allclose(xla[:, :8], einsum[:, :8], atol=2e-5)

    s2s = tiny(family="encoder_decoder", position="sinusoidal", pre_norm=False)
    src, tgt = _tokens(s2s, seed=1), _tokens(s2s, length=9, seed=2)
    src = src.at[1, 8:].set(s2s.pad_id)
    einsum, xla = _same_params_logits(s2s, src, tgt)
    np.testing.assert_allclose(xla, einsum, atol=2e-5)


@pytest.mark.slow
def test_xla_kv_cache_decoding_matches_full_forward():
    cfg = tiny(position="rotary", attention_impl="xla")
    model, variables = init(cfg, 6)
    tokens = _tokens(cfg, length=8)
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


def test_fused_attention_config_errors():
    with pytest.raises(ValueError, match="attention_impl='cudnn' needs dtype bfloat16"):
        tiny(attention_impl="cudnn", dtype="float32")
    with pytest.raises(ValueError, match="has no attention dropout"):
        tiny(attention_impl="xla", attention_dropout_rate=0.1)
    with pytest.raises(ValueError, match="attention_impl='flash' is not one of"):
        tiny(attention_impl="flash")
    assert tiny(attention_impl="cudnn", dtype="bfloat16").attention_impl == "cudnn"


@pytest.mark.skipif(jax.devices()[0].platform != "gpu", reason="cuDNN attention needs a GPU")
def test_cudnn_matches_xla_on_gpu():
    cfg = tiny(dtype="bfloat16", d_model=64, num_heads=4, max_len=64)
    tokens = _tokens(cfg, length=64)
    model, variables = init(cfg.replace(attention_impl="xla"), 8)
    cudnn_model, _ = init(cfg.replace(attention_impl="cudnn"), 8)
    xla = japply(model, variables, tokens)
    cudnn = japply(cudnn_model, variables, tokens)
    np.testing.assert_allclose(np.asarray(cudnn), np.asarray(xla), atol=5e-2)
