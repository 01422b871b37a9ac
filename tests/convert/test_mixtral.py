"""Mixtral (MixtralForCausalLM) import/export: logits equal transformers', both expert layouts."""

from __future__ import annotations

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict, unflatten_dict
from safetensors.numpy import load_file

from llm import models
from llm.convert import ConversionError, layout, llama, load_hf, mixtral, registry, save_hf
from llm.convert.workdir import export_workdir, import_to_workdir
from llm.decode import decoder_tokens_to_logits, greedy, init_cache
from llm.models import presets
from tests.convert.hf_models import PAD, VOCAB, save, torch, transformers
from tests.convert.hf_models import mixtral as hf_mixtral

TOL = 1e-4
NEW_TOKENS = 12
WINDOW = 4  # HF sliding_window: shorter than the test sequences, so it masks


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """(folder in the per-expert layout save_pretrained writes, torch model)."""
    folder = tmp_path_factory.mktemp("mixtral")
    return folder, save("mixtral", folder)


def _batch(seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, PAD, size=(3, 12))
    mask = np.ones_like(ids)
    mask[1, 7:] = 0  # right padding
    mask[2, 10:] = 0
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


def _flat(params):
    return {k: np.asarray(v) for k, v in flatten_dict(nn.meta.unbox(params), sep="/").items()}


def _assert_same_params(a, b):
    a, b = _flat(a), _flat(b)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_import_matches_transformers_and_round_trips_exactly(released, tmp_path):
    folder, hf_model = released
    names = load_file(str(folder / "model.safetensors")).keys()
    assert "model.layers.0.block_sparse_moe.experts.3.w2.weight" in names  # released layout
    cfg, params, _ = load_hf(folder)
    assert (cfg.num_experts, cfg.experts_per_token, cfg.expert_hidden) == (4, 2, 48)
    assert (cfg.router_scores, cfg.router_renormalize, cfg.router_scale) == ("softmax", True, 1.0)
    assert cfg.load_balance_loss_weight == 0.02 and cfg.router_z_loss_weight == 0.0
    assert (cfg.kv_heads, cfg.rope_theta, cfg.attention_window) == (2, 500.0, 0)
    kernel = params["stack"]["layers_1"]["moe"]["router"]["kernel"]
    np.testing.assert_array_equal(
        kernel, hf_model.model.layers[1].mlp.gate.weight.detach().numpy().T
    )

    ids, mask = _batch()
    ours = _our_logits(cfg, params, ids, mask)
    diff = _max_diff(ours, _torch_logits(hf_model, ids, mask), mask)
    print(f"\nmixtral: import max |logit diff| = {diff:.3g}")
    assert diff <= TOL

    # Export writes the same tensors bit for bit, and import -> export -> import is exact.
    out = save_hf(cfg, params, tmp_path / "export")
    original = load_file(str(folder / "model.safetensors"))
    exported = load_file(str(out / "model.safetensors"))
    assert exported.keys() == original.keys()
    for name, value in original.items():
        np.testing.assert_array_equal(exported[name], value, err_msg=name)
    cfg2, params2, hf2 = load_hf(out)
    assert cfg2 == cfg and hf2["architectures"] == ["MixtralForCausalLM"]
    _assert_same_params(params, params2)


def test_fused_expert_layout_imports_the_same_params(released, tmp_path):
    folder, hf_model = released
    hf_model.save_pretrained(tmp_path, save_original_format=False)
    names = load_file(str(tmp_path / "model.safetensors")).keys()
    assert "model.layers.0.mlp.experts.gate_up_proj" in names
    assert not any("block_sparse_moe" in n for n in names)
    cfg, params, _ = load_hf(folder)
    cfg_fused, params_fused, _ = load_hf(tmp_path)
    assert cfg_fused == cfg
    _assert_same_params(params_fused, params)


def test_workdir_import_exports_the_same_safetensors(released, tmp_path):
    folder, _ = released
    config = import_to_workdir(folder, tmp_path / "w")
    assert config.model.num_experts == 4 and config.model.experts_per_token == 2
    out = export_workdir(tmp_path / "w", tmp_path / "hf")
    original = load_file(str(folder / "model.safetensors"))
    exported = load_file(str(out / "model.safetensors"))
    assert exported.keys() == original.keys()
    for name, value in original.items():
        np.testing.assert_array_equal(exported[name], value, err_msg=name)


def _tiny(**changes):
    """The Mixtral 8x7B preset shrunk (GQA 4/2, 2 layers, d 64)."""
    base = dict(
        vocab_size=VOCAB, d_model=64, num_heads=4, num_kv_heads=2, d_ff=48, num_layers=2,
        max_len=64,
    )  # fmt: skip
    return models.ModelConfig.from_dict(presets.mixtral_8x7b()).replace(**(base | changes))


def _random_params(cfg, seed):
    """Random params of cfg's shapes (norm scales off 1, so a swapped tensor shows), no init."""
    rng = np.random.default_rng(seed)
    flat = {}
    for key, spec in layout.abstract_params(cfg).items():
        noise = rng.standard_normal(spec.shape).astype(np.float32)
        flat[key] = 1 + 0.05 * noise if key.endswith("scale") else 0.1 * noise
    return unflatten_dict(flat, sep="/")


EXPORT_CASES = {
    "untied": dict(tie_embeddings=False),
    # Tied head, a sliding window (HF sliding_window 4), scanned layers.
    "tied_window_scanned": dict(tie_embeddings=True, attention_window=WINDOW - 1, scan_layers=True),
}


@pytest.mark.parametrize("case", sorted(EXPORT_CASES))
def test_export_loads_in_transformers(case, tmp_path):
    cfg = _tiny(head_dim=16, rope_theta=500.0, num_experts=4, dtype="float32", **EXPORT_CASES[case])
    params = _random_params(cfg, seed=3)
    out = save_hf(cfg, params, tmp_path / "export")
    hf_model, info = transformers.MixtralForCausalLM.from_pretrained(out, output_loading_info=True)
    assert not any(info.values()), info  # no missing, unexpected or mismatched tensors
    hf_config = hf_model.config
    assert hf_config.sliding_window == (WINDOW if cfg.attention_window else None)
    assert hf_config.router_aux_loss_coef == cfg.load_balance_loss_weight == 0.02
    ids, mask = _batch(1)
    ours = _our_logits(cfg, params, ids, mask)
    diff = _max_diff(_torch_logits(hf_model.eval(), ids, mask), ours, mask)
    print(f"\nmixtral {case}: export max |logit diff| = {diff:.3g}")
    assert diff <= TOL

    cfg2, params2, _ = load_hf(out, scan_layers=cfg.scan_layers, dtype="float32")
    assert cfg2 == cfg
    _assert_same_params(params2, params)


def test_sliding_window_imports_as_attention_window(tmp_path):
    hf_model = hf_mixtral(seed=6, sliding_window=WINDOW)
    hf_model.save_pretrained(tmp_path)
    cfg, params, _ = load_hf(tmp_path)
    assert cfg.attention_window == WINDOW - 1
    ids, mask = _batch(2)
    ref = _torch_logits(hf_model, ids, mask)
    diff = _max_diff(_our_logits(cfg, params, ids, mask), ref, mask)
    print(f"\nmixtral sliding_window={WINDOW}: import max |logit diff| = {diff:.3g}")
    assert diff <= TOL
    # The window masks something at these lengths: full attention gives other logits.
    full = _our_logits(cfg.replace(attention_window=0), params, ids, mask)
    assert _max_diff(full, ref, mask) > 100 * TOL


def test_greedy_generation_matches_transformers(released):
    folder, hf_model = released
    cfg, params, _ = load_hf(folder)
    prompt = np.random.default_rng(1).integers(1, PAD, size=(2, 5))
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
        ).numpy()[:, prompt.shape[1] :]
    model = models.build_model(cfg)

    @jax.jit
    def run(p, prompt_BxP):
        cache = init_cache(model, jnp.zeros((2, 5 + NEW_TOKENS - 1), jnp.int32))
        step = decoder_tokens_to_logits(model, p)
        return greedy(step, cache, prompt_BxP, max_decode_len=NEW_TOKENS, eos_id=-1)[:, 5:]

    ours = np.asarray(run(params, jnp.asarray(prompt)))
    assert ref.shape == (2, NEW_TOKENS)
    np.testing.assert_array_equal(ours, ref)


def test_registry_picks_mixtral_and_llama_refuses_experts():
    cfg = _tiny()
    assert mixtral.exportable(cfg) == []
    assert registry.for_model_config(cfg).MODEL_TYPE == "mixtral"
    assert registry.for_hf_config({"architectures": ["MixtralForCausalLM"]}) is mixtral
    assert "MixtralForCausalLM" in registry.supported()
    assert any("num_experts=8" in p for p in llama.exportable(cfg))
    dense = cfg.replace(num_experts=0)
    assert registry.for_model_config(dense).MODEL_TYPE == "llama"
    assert any("num_experts=0" in p for p in mixtral.exportable(dense))


def test_deepseek_style_config_is_refused_with_reasons(tmp_path):
    # DeepSeek-V2-Lite's routing on a tiny LLaMA-shaped decoder.
    cfg = models.ModelConfig.from_dict(presets.deepseek_v2_lite()).replace(
        vocab_size=VOCAB, d_model=64, num_heads=4, num_kv_heads=2, head_dim=16, d_ff=96,
        expert_d_ff=32, num_layers=2, max_len=64, num_experts=8,
    )  # fmt: skip
    problems = " ".join(mixtral.exportable(cfg))
    for reason in ("num_shared_experts=2", "first_dense_layers=1", "router_renormalize=False"):
        assert reason in problems
    sigmoid = cfg.replace(
        num_shared_experts=0, first_dense_layers=0, router_renormalize=True,
        router_scores="sigmoid", router_scale=2.5,
    )  # fmt: skip
    problems = " ".join(mixtral.exportable(sigmoid))
    assert "router_scores='sigmoid'" in problems and "router_scale=2.5" in problems
    assert "activation='gelu'" in " ".join(mixtral.exportable(_tiny(activation="gelu")))
    with pytest.raises(ConversionError, match="mixtral: .*num_shared_experts=2"):
        save_hf(cfg, {}, tmp_path / "x")


BAD_CONFIGS = {
    "sliding_window": (1, "sliding_window=1"),
    "router_jitter_noise": (0.1, "router_jitter_noise=0.1"),
    "num_experts_per_tok": (5, "num_experts_per_tok=5"),
    "hidden_act": ("gelu", "hidden_act='gelu'"),
    "rope_parameters": ({"rope_type": "dynamic", "rope_theta": 1e6, "factor": 4.0}, "'dynamic'"),
}


@pytest.mark.parametrize("key", sorted(BAD_CONFIGS))
def test_unsupported_config_values_are_named(key):
    hf = transformers.MixtralConfig(num_local_experts=4).to_dict()
    value, message = BAD_CONFIGS[key]
    hf[key] = value
    with pytest.raises(ConversionError, match=re.escape(message)):
        mixtral.config_from_hf(hf)
