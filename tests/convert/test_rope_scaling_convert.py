"""Hugging Face LLaMA/Mixtral with RoPE scaling (llama3, yarn, linear): import, export, refusals."""

from __future__ import annotations

import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm import models
from llm.convert import ConversionError, llama, load_hf, mixtral, save_hf
from llm.decode import decoder_tokens_to_logits, greedy, init_cache
from tests.convert.hf_models import PAD, VOCAB, _perturb, torch, transformers
from tests.convert.hf_models import mixtral as hf_mixtral

TOL = 1e-4
LENGTH = 32  # test sequences: longer than every original length below, so scaling matters
NEW_TOKENS = 20
THETA = 500.0

# kind: (transformers 5 rope_parameters, the ModelConfig fields import must give).
ROPES = {
    # Llama 3.1's scheme on a tiny model: with head_dim 16 and theta 500 the wavelengths run
    # 6..1700, so original 8 puts one frequency in the blend and the rest interpolated.
    "llama3": (
        {
            "rope_type": "llama3",
            "rope_theta": THETA,
            "factor": 4.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8,
        },
        dict(
            rope_scaling="llama3",
            rope_scaling_factor=4.0,
            rope_original_max_len=8,
            rope_low_freq_factor=1.0,
            rope_high_freq_factor=4.0,
        ),
    ),
    # YaRN: the ramp covers dims 0..2 of 8, attention factor 0.1 ln 4 + 1.
    "yarn": (
        {
            "rope_type": "yarn",
            "rope_theta": THETA,
            "factor": 4.0,
            "original_max_position_embeddings": 16,
        },
        dict(
            rope_scaling="yarn",
            rope_scaling_factor=4.0,
            rope_original_max_len=16,
            rope_beta_fast=32.0,
            rope_beta_slow=1.0,
            rope_attention_factor=None,
            rope_yarn_truncate=True,
        ),
    ),
    "linear": (
        {"rope_type": "linear", "rope_theta": THETA, "factor": 2.0},
        dict(rope_scaling="linear", rope_scaling_factor=2.0),
    ),
}


def _hf_llama(rope_parameters: dict, seed: int = 11):
    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rope_parameters=dict(rope_parameters),
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
    )
    model = transformers.LlamaForCausalLM(cfg)
    _perturb(model)
    return model.eval()


def _batch(seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, PAD, size=(3, LENGTH))
    mask = np.ones_like(ids)
    mask[1, 20:] = 0  # right padding
    return np.where(mask == 1, ids, PAD), mask


def _torch_logits(hf_model, ids, mask):
    with torch.no_grad():
        out = hf_model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask))
    return out.logits.numpy()


def _our_logits(cfg, params, ids, mask):
    model = models.build_model(cfg)
    apply = jax.jit(lambda p, i, m: model.apply({"params": p}, i, segment_ids=m))
    return np.asarray(apply(params, ids, mask))


def _max_diff(a, b, mask):
    return float(np.abs(a - b)[mask.astype(bool)].max())


@pytest.fixture(scope="module", params=sorted(ROPES))
def imported(request, tmp_path_factory):
    """(kind, HF folder, torch model, our cfg, our params)."""
    kind = request.param
    folder = tmp_path_factory.mktemp(kind)
    hf_model = _hf_llama(ROPES[kind][0])
    hf_model.save_pretrained(folder)
    cfg, params, _ = load_hf(folder)
    return kind, folder, hf_model, cfg, params


def test_logits_match_and_export_reloads_in_transformers(imported, tmp_path):
    kind, _, hf_model, cfg, params = imported
    expected = ROPES[kind][1]
    assert {k: getattr(cfg, k) for k in expected} == expected
    assert cfg.rope_theta == THETA
    ids, mask = _batch()
    ref = _torch_logits(hf_model, ids, mask)
    ours = _our_logits(cfg, params, ids, mask)
    diff = _max_diff(ours, ref, mask)
    unscaled = _max_diff(_our_logits(cfg.replace(**_unscaled()), params, ids, mask), ref, mask)
    print(f"\n{kind}: import max |logit diff| = {diff:.3g} (unscaled RoPE: {unscaled:.3g})")
    assert diff <= TOL
    assert unscaled > 100 * TOL  # the scaling is what makes them agree

    out = save_hf(cfg, params, tmp_path / "export")
    written = json.loads((out / "config.json").read_text())
    assert written["rope_parameters"]["rope_type"] == kind
    assert "rope_scaling" not in written
    reloaded = transformers.LlamaForCausalLM.from_pretrained(out).eval()
    assert reloaded.config.rope_parameters["rope_type"] == kind
    export_diff = _max_diff(_torch_logits(reloaded, ids, mask), ours, mask)
    print(f"{kind}: export max |logit diff| = {export_diff:.3g}")
    assert export_diff <= TOL
    assert load_hf(out)[0] == cfg


def _unscaled() -> dict:
    defaults = models.ModelConfig()
    names = {n for _, fields in ROPES.values() for n in fields}
    return {n: getattr(defaults, n) for n in names}


def test_transformers_4_layout_reads_the_same(imported, tmp_path):
    """4.x config.json: top-level rope_theta and rope_scaling (kind under `type`)."""
    kind, folder, hf_model, cfg, _ = imported
    old = tmp_path / "v4"
    old.mkdir()
    for f in folder.iterdir():
        (old / f.name).write_bytes(f.read_bytes())
    hf = json.loads((folder / "config.json").read_text())
    rope = dict(hf.pop("rope_parameters"))
    hf["rope_theta"] = rope.pop("rope_theta")
    hf["rope_scaling"] = {"type": rope.pop("rope_type"), **rope}
    (old / "config.json").write_text(json.dumps(hf))
    assert load_hf(old)[0] == cfg
    # transformers 5 reads the old layout the same way.
    ids, mask = _batch(1)
    v4 = transformers.LlamaForCausalLM.from_pretrained(old).eval()
    assert _max_diff(_torch_logits(v4, ids, mask), _torch_logits(hf_model, ids, mask), mask) == 0


def test_greedy_decoding_past_the_original_length_matches_transformers(imported):
    _, _, hf_model, cfg, params = imported
    prompt = np.random.default_rng(2).integers(1, PAD, size=(2, 5))
    hf_model.generation_config.eos_token_id = None
    with torch.no_grad():
        ref = hf_model.generate(
            input_ids=torch.tensor(prompt),
            attention_mask=torch.ones_like(torch.tensor(prompt)),
            pad_token_id=0,
            do_sample=False,
            num_beams=1,
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS,
        ).numpy()[:, 5:]
    model = models.build_model(cfg)

    @jax.jit
    def run(p, prompt_BxP):
        cache = init_cache(model, jnp.zeros((2, 5 + NEW_TOKENS - 1), jnp.int32))
        step = decoder_tokens_to_logits(model, p)
        return greedy(step, cache, prompt_BxP, max_decode_len=NEW_TOKENS, eos_id=-1)[:, 5:]

    np.testing.assert_array_equal(np.asarray(run(params, jnp.asarray(prompt))), ref)


def test_mixtral_reads_yarn_like_llama(tmp_path):
    rope_parameters = ROPES["yarn"][0]
    # (transformers' yarn reads MixtralConfig's head_dim, None unless given: a TypeError.)
    hf_model = hf_mixtral(rope_parameters=dict(rope_parameters), head_dim=16)
    hf_model.save_pretrained(tmp_path)
    cfg, params, _ = load_hf(tmp_path)
    assert (cfg.rope_scaling, cfg.rope_scaling_factor, cfg.rope_original_max_len) == ("yarn", 4, 16)
    ids, mask = _batch(3)
    diff = _max_diff(_our_logits(cfg, params, ids, mask), _torch_logits(hf_model, ids, mask), mask)
    print(f"\nmixtral yarn: import max |logit diff| = {diff:.3g}")
    assert diff <= TOL
    written = mixtral.config_to_hf(cfg, {})["rope_parameters"]
    assert written == llama.rope_parameters_to_hf(cfg) and written["rope_type"] == "yarn"


def test_yarn_attention_factor_from_deepseek_mscale():
    hf = transformers.LlamaConfig(max_position_embeddings=64).to_dict()
    hf["rope_parameters"] = {
        "rope_type": "yarn",
        "rope_theta": THETA,
        "factor": 40.0,
        "original_max_position_embeddings": 16,
        "mscale": 1.0,
        "mscale_all_dim": 0.707,
    }
    cfg = llama.config_from_hf(hf)
    expected = (0.1 * np.log(40.0) + 1) / (0.1 * 0.707 * np.log(40.0) + 1)
    assert cfg.rope_attention_factor == pytest.approx(expected)
    # Without mscale_all_dim transformers ignores mscale: YaRN's default factor.
    del hf["rope_parameters"]["mscale_all_dim"]
    assert llama.config_from_hf(hf).rope_attention_factor is None


UNSUPPORTED = {
    "dynamic": ({"rope_type": "dynamic", "factor": 2.0}, "rope_type='dynamic' (RoPE scaling)"),
    "longrope": (
        {"rope_type": "longrope", "short_factor": [1.0], "long_factor": [2.0]},
        "rope_type='longrope' (RoPE scaling) is not supported; supported: 'default', 'linear'",
    ),
    "4.x dynamic": ({"type": "dynamic", "factor": 2.0}, "rope_type='dynamic'"),
    "unknown key": (
        {"rope_type": "llama3", **ROPES["llama3"][0], "mrope_section": [2, 2]},
        "rope_type='llama3' with mrope_section: not supported",
    ),
    "missing key": (
        {"rope_type": "llama3", "factor": 8.0, "high_freq_factor": 4.0},
        "lacks 'low_freq_factor', which rope_type='llama3' needs",
    ),
    "partial rotary": (
        {"rope_type": "default", "partial_rotary_factor": 0.5},
        "partial_rotary_factor=0.5 is not supported",
    ),
}


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
@pytest.mark.parametrize("key", ["rope_parameters", "rope_scaling"])
def test_unsupported_rope_is_refused_by_name(name, key):
    rope, message = UNSUPPORTED[name]
    hf = transformers.LlamaConfig(max_position_embeddings=64).to_dict()
    hf.pop("rope_parameters", None)
    hf[key] = dict(rope)
    with pytest.raises(ConversionError, match=re.escape(message)):
        llama.config_from_hf(hf)
    with pytest.raises(ConversionError, match=re.escape(message)):
        mixtral.config_from_hf(hf | {"model_type": "mixtral"})
