"""RoPE scaling (linear, Llama 3.1, YaRN) equals transformers' frequencies and rotation."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from llm.errors import ConfigError
from llm.models import ModelConfig
from llm.models.positions import apply_rotary, rope_frequencies, rope_inv_freq

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS  # noqa: E402
from transformers.models.llama import modeling_llama  # noqa: E402

HEAD_DIM = 128
MAX_LEN = 131072
# Frequencies agree to one float32 ulp: torch's float32 pow is faithfully, not correctly,
# rounded, and a few (theta, k) land one ulp apart (none for the thetas of the rotation test).
FREQ_RTOL = 2.5e-7
TOL = 1e-5

# name: (transformers rope_parameters, our ModelConfig fields, positions from, to).
CASES = {
    "default": (
        {"rope_type": "default", "rope_theta": 500000.0},
        {"rope_theta": 500000.0},
        (0, MAX_LEN),
    ),
    # Position interpolation of a 4k Llama-2 to 16k (Chen et al. 2023).
    "linear": (
        {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0},
        {"rope_theta": 10000.0, "rope_scaling": "linear", "rope_scaling_factor": 4.0},
        (4096, 16384),
    ),
    # Llama 3.1's released rope_scaling.
    "llama3": (
        {
            "rope_type": "llama3",
            "rope_theta": 500000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
        {
            "rope_theta": 500000.0,
            "rope_scaling": "llama3",
            "rope_scaling_factor": 8.0,
            "rope_original_max_len": 8192,
            "rope_low_freq_factor": 1.0,
            "rope_high_freq_factor": 4.0,
        },
        (8192, MAX_LEN),
    ),
    # YaRN on a 4k Llama-2 (Peng et al. 2023's Yarn-Llama-2, s = 4).
    "yarn": (
        {
            "rope_type": "yarn",
            "rope_theta": 10000.0,
            "factor": 4.0,
            "original_max_position_embeddings": 4096,
        },
        {
            "rope_theta": 10000.0,
            "rope_scaling": "yarn",
            "rope_scaling_factor": 4.0,
            "rope_original_max_len": 4096,
        },
        (4096, 16384),
    ),
    # Qwen2.5/Qwen3's YaRN (32k -> 128k).
    "yarn_qwen": (
        {
            "rope_type": "yarn",
            "rope_theta": 1e6,
            "factor": 4.0,
            "original_max_position_embeddings": 32768,
        },
        {
            "rope_theta": 1e6,
            "rope_scaling": "yarn",
            "rope_scaling_factor": 4.0,
            "rope_original_max_len": 32768,
        },
        (32768, MAX_LEN),
    ),
    # Untruncated ramp (gpt-oss style), other betas and an explicit attention factor.
    "yarn_options": (
        {
            "rope_type": "yarn",
            "rope_theta": 500000.0,
            "factor": 32.0,
            "original_max_position_embeddings": 4096,
            "beta_fast": 16.0,
            "beta_slow": 2.0,
            "attention_factor": 1.2,
            "truncate": False,
        },
        {
            "rope_theta": 500000.0,
            "rope_scaling": "yarn",
            "rope_scaling_factor": 32.0,
            "rope_original_max_len": 4096,
            "rope_beta_fast": 16.0,
            "rope_beta_slow": 2.0,
            "rope_attention_factor": 1.2,
            "rope_yarn_truncate": False,
        },
        (4096, MAX_LEN),
    ),
}


def _hf_config(rope_parameters: dict, max_len: int):
    # max_len = the scaled context (transformers warns when factor != max_len / original).
    return transformers.LlamaConfig(
        hidden_size=32 * HEAD_DIM,
        num_attention_heads=32,
        head_dim=HEAD_DIM,
        max_position_embeddings=max_len,
        rope_parameters=dict(rope_parameters),
    )


def _ours(fields: dict) -> ModelConfig:
    return ModelConfig(
        position="rotary", d_model=32 * HEAD_DIM, num_heads=32, max_len=MAX_LEN, **fields
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_frequencies_match_transformers(name):
    rope_parameters, fields, (_, stop) = CASES[name]
    hf = _hf_config(rope_parameters, stop)
    kind = rope_parameters["rope_type"]
    if kind == "default":
        ref_inv, ref_scale = modeling_llama.LlamaRotaryEmbedding.compute_default_rope_parameters(hf)
    else:
        ref_inv, ref_scale = ROPE_INIT_FUNCTIONS[kind](hf, None)
    inv_freq_H, scale = rope_frequencies(_ours(fields))
    assert inv_freq_H.dtype == np.float32 and inv_freq_H.shape == (HEAD_DIM // 2,)
    np.testing.assert_allclose(inv_freq_H, ref_inv.numpy(), rtol=FREQ_RTOL, atol=0)
    assert scale == pytest.approx(ref_scale, rel=1e-12)
    if kind != "default":  # the scaling changes something
        assert not np.allclose(inv_freq_H, rope_inv_freq(HEAD_DIM, fields["rope_theta"]))


def test_yarn_attention_factor_default_is_0p1_ln_s_plus_1():
    _, scale = rope_frequencies(_ours(CASES["yarn"][1]))
    assert scale == pytest.approx(0.1 * np.log(4.0) + 1)
    # The released Llama 3.1 keeps the logits' scale.
    assert rope_frequencies(_ours(CASES["llama3"][1]))[1] == 1.0


@pytest.fixture(scope="module")
def rotate():
    """Our rotation, jitted once per (frequency table, scale)."""
    return jax.jit(apply_rotary, static_argnums=(3,))


@pytest.mark.parametrize("name", sorted(CASES))
def test_rotation_matches_transformers_beyond_original_length(name, rotate):
    rope_parameters, fields, (start, stop) = CASES[name]
    rng = np.random.default_rng(0)
    b, length, heads = 2, 16, 2
    positions_BxL = np.sort(rng.integers(start, stop, size=(b, length)), axis=-1)
    positions_BxL[0, -1] = stop - 1  # the longest position the model supports
    q_BxLxHxK = rng.standard_normal((b, length, heads, HEAD_DIM)).astype(np.float32)

    hf_rope = modeling_llama.LlamaRotaryEmbedding(_hf_config(rope_parameters, stop))
    q_t = torch.from_numpy(q_BxLxHxK)
    with torch.no_grad():
        cos, sin = hf_rope(q_t, torch.from_numpy(positions_BxL))
        ref, _ = modeling_llama.apply_rotary_pos_emb(q_t, q_t, cos, sin, unsqueeze_dim=2)

    inv_freq_H, scale = rope_frequencies(_ours(fields))
    ours = np.asarray(rotate(q_BxLxHxK, positions_BxL, inv_freq_H, scale))
    diff = float(np.abs(ours - ref.numpy()).max())
    print(f"\n{name}: positions up to {positions_BxL.max()}, max |q diff| = {diff:.3g}")
    assert diff <= TOL


def test_apply_rotary_refuses_a_bare_theta():
    x = np.zeros((1, 2, 1, 8), np.float32)
    with pytest.raises(ValueError, match=r"expected \(4,\).*rope_inv_freq"):
        apply_rotary(x, np.zeros((1, 2), np.int32), 10000.0)


def test_frequencies_are_shared_and_read_only():
    cfg = _ours(CASES["llama3"][1])
    inv_freq_H, _ = rope_frequencies(cfg)
    assert rope_frequencies(cfg.replace(dropout_rate=0.1))[0] is inv_freq_H
    assert not inv_freq_H.flags.writeable


LLAMA3 = CASES["llama3"][1]
YARN = CASES["yarn"][1]


@pytest.mark.parametrize(
    "fields, pattern",
    [
        ({"rope_scaling": "dynamic"}, r"rope_scaling='dynamic' is not one of none, linear"),
        (
            {"position": "learned", "rope_scaling": "linear", "rope_scaling_factor": 2.0},
            r"rope_scaling='linear' scales rotary positions, but position='learned'",
        ),
        (
            {"position": "rotary", "rope_scaling_factor": 8.0},
            r"rope_scaling_factor=8.0 is a setting of .*which rope_scaling='none' does not "
            r"read: set rope_scaling, or leave rope_scaling_factor=1.0",
        ),
        (
            {"position": "rotary", **LLAMA3, "rope_beta_fast": 16.0},
            r"rope_beta_fast=16.0 is a setting of rope_scaling='yarn'.*'llama3' does not read",
        ),
        (
            {"position": "rotary", **LLAMA3, "rope_scaling_factor": 0.5},
            r"rope_scaling_factor=0.5 must be >= 1",
        ),
        (
            {"position": "rotary", **LLAMA3, "rope_original_max_len": 0},
            r"rope_original_max_len=0 must be a positive integer for rope_scaling='llama3'",
        ),
        (
            {"position": "rotary", **LLAMA3, "rope_low_freq_factor": 4.0},
            r"rope_low_freq_factor=4.0 and rope_high_freq_factor=4.0 need 0 < low < high",
        ),
        (
            {"position": "rotary", **YARN, "rope_beta_fast": 1.0, "rope_beta_slow": 32.0},
            r"rope_beta_fast=1.0 and rope_beta_slow=32.0 need 0 < beta_slow < beta_fast",
        ),
        (
            {"position": "rotary", **YARN, "rope_attention_factor": -1.0},
            r"rope_attention_factor=-1.0 must be positive",
        ),
    ],
)
def test_bad_rope_values_name_the_value_and_the_fix(fields, pattern):
    with pytest.raises(ConfigError, match=pattern):
        ModelConfig.from_dict(fields)
