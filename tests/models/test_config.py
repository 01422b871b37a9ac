"""ModelConfig validation and messages."""

import pytest

from llm.models import ModelConfig, count_params


def test_defaults_and_round_trip():
    cfg = ModelConfig()
    assert cfg.family == "decoder" and cfg.position == "learned" and cfg.pre_norm
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.kv_heads == cfg.num_heads and cfg.head_size == cfg.d_model // cfg.num_heads


def test_unknown_key_names_close_match():
    with pytest.raises(ValueError, match=r"unknown model config key 'num_head'.*'num_heads'"):
        ModelConfig.from_dict({"num_head": 4})


@pytest.mark.parametrize(
    "fields, pattern",
    [
        ({"d_model": 30, "num_heads": 4}, r"d_model=30 is not divisible by num_heads=4.*head_dim"),
        ({"num_heads": 8, "num_kv_heads": 3}, r"num_heads=8 is not divisible by num_kv_heads=3"),
        ({"family": "decodr"}, r"family='decodr'.*did you mean 'decoder'"),
        ({"position": "rope"}, r"position='rope' is not one of"),
        ({"norm": "rms"}, r"norm='rms'.*rmsnorm"),
        ({"activation": "swish"}, r"activation='swish'"),
        ({"remat": "dot"}, r"remat='dot'.*'dots'"),
        ({"dtype": "bf16"}, r"dtype='bf16'"),
        ({"dropout_rate": 1.5}, r"dropout_rate=1.5"),
        ({"vocab_size": 0}, r"vocab_size=0 must be a positive integer"),
    ],
)
def test_bad_values(fields, pattern):
    with pytest.raises(ValueError, match=pattern):
        ModelConfig.from_dict(fields)


def test_head_dim_overrides_divisibility():
    cfg = ModelConfig(d_model=30, num_heads=4, head_dim=8)
    assert cfg.head_size == 8


def test_from_configdict():
    ml_collections = pytest.importorskip("ml_collections")
    d = ml_collections.ConfigDict(
        {"vocab_size": 11, "d_model": 8, "num_heads": 2, "d_ff": 16, "num_layers": 1, "max_len": 8}
    )
    cfg = ModelConfig.from_dict(d)
    assert cfg.vocab_size == 11
    assert count_params(cfg) > 0


def test_auto_compute_dtype_is_bf16_on_accelerators(monkeypatch):
    import jax
    import jax.numpy as jnp

    cfg = ModelConfig()
    assert cfg.dtype == "auto"
    assert cfg.compute_dtype == jnp.float32  # this machine: CPU
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert cfg.compute_dtype == jnp.bfloat16
    monkeypatch.setattr(jax, "default_backend", lambda: "tpu")
    assert cfg.compute_dtype == jnp.bfloat16
    assert ModelConfig(dtype="float32").compute_dtype == jnp.float32
    assert cfg.params_dtype == jnp.float32
