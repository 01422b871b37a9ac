"""LLaMA-style decoders (LlamaForCausalLM) <-> our RMSNorm/SwiGLU/rotary decoder.

Hugging Face LLaMA weights rotate the two halves of each head (rotate_half), the
layout our apply_rotary uses, so q/k need no permutation. The embedding, attention,
norm and head mapping here is shared with the LLaMA-shaped MoE decoders
(llm/convert/mixtral.py): `decoder_config`, `decoder_params_from_hf`,
`decoder_params_to_hf`, `decoder_config_to_hf` and `decoder_problems` take the
feed-forward part as an argument.

RoPE scaling (transformers' rope_type linear, llama3 and yarn) is read from both
transformers 5's `rope_parameters` and 4.x's `rope_theta` + `rope_scaling`, the way
transformers resolves them, and written in the 5.x layout; other kinds are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from llm.convert.common import Mapper, Writer, get, require
from llm.convert.hf_files import TensorReader
from llm.convert.layout import Flat
from llm.models import ModelConfig
from llm.models.positions import yarn_mscale

ARCHITECTURES = ("LlamaForCausalLM",)
MODEL_TYPE = "llama"
IGNORED = (r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq",)

# (mapper or writer, cfg, HF layer prefix `model.layers.i`, our prefix `stack/layers_i`).
FfnIn = Callable[[Mapper, ModelConfig, str, str], None]
FfnOut = Callable[[Writer, ModelConfig, str, str], None]


# transformers' rope_type -> our rope_scaling (dynamic, longrope, ... are refused).
ROPE_SCALINGS_IN = {"default": "none", "linear": "linear", "llama3": "llama3", "yarn": "yarn"}
ROPE_SCALINGS_OUT = {ours: hf for hf, ours in ROPE_SCALINGS_IN.items()}
# The keys each rope_type may carry besides rope_type/type, rope_theta, partial_rotary_factor.
_ROPE_KEYS = {
    "default": (),
    "linear": ("factor",),
    "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"),
    "yarn": (
        "factor",
        "original_max_position_embeddings",
        "attention_factor",
        "beta_fast",
        "beta_slow",
        "mscale",
        "mscale_all_dim",
        "truncate",
    ),
}


def _rope_value(rope: dict[str, Any], key: str, kind: str) -> float:
    require(
        rope.get(key) is not None,
        f"config.json rope_parameters lacks {key!r}, which rope_type={kind!r} needs.",
    )
    return float(rope[key])


def rope_fields(hf: dict[str, Any], default_theta: float = 10000.0) -> dict[str, Any]:
    """Our rope_theta and rope_scaling fields for a config.json, read as transformers does."""
    # transformers 5 nests RoPE settings in rope_parameters; 4.x had a top-level rope_theta
    # and the scaling in rope_scaling (its kind under `type` in older files), which wins.
    rope = dict(hf.get("rope_scaling") or hf.get("rope_parameters") or {})
    kind = rope.get("rope_type") or rope.get("type") or "default"
    require(
        kind in ROPE_SCALINGS_IN,
        f"config.json rope_type={kind!r} (RoPE scaling) is not supported; supported: "
        f"{', '.join(repr(k) for k in ROPE_SCALINGS_IN)}.",
    )
    unknown = sorted(
        set(rope) - {"rope_type", "type", "rope_theta", "partial_rotary_factor", *_ROPE_KEYS[kind]}
    )
    require(
        not unknown,
        f"config.json rope_type={kind!r} with {', '.join(unknown)}: not supported (this "
        f"converter reads {', '.join(_ROPE_KEYS[kind]) or 'only rope_theta'} for {kind!r}).",
    )
    partial = rope.get("partial_rotary_factor", hf.get("partial_rotary_factor"))
    require(
        partial in (None, 1, 1.0),
        f"config.json partial_rotary_factor={partial!r} is not supported: our rotary "
        "embedding turns whole heads (1.0).",
    )
    theta = rope.get("rope_theta") or hf.get("rope_theta") or default_theta
    fields: dict[str, Any] = {"rope_theta": float(theta), "rope_scaling": ROPE_SCALINGS_IN[kind]}
    if kind == "default":
        return fields
    # transformers prefers a top-level original_max_position_embeddings (Phi-3 keeps it
    # there), then the one in the RoPE dict, then max_position_embeddings.
    max_len = get(hf, "max_position_embeddings")
    original = int(
        hf.get("original_max_position_embeddings")
        or rope.get("original_max_position_embeddings")
        or max_len
    )
    if kind == "linear":
        return fields | {"rope_scaling_factor": _rope_value(rope, "factor", kind)}
    if kind == "llama3":
        return fields | {
            "rope_scaling_factor": _rope_value(rope, "factor", kind),
            "rope_original_max_len": original,
            "rope_low_freq_factor": _rope_value(rope, "low_freq_factor", kind),
            "rope_high_freq_factor": _rope_value(rope, "high_freq_factor", kind),
        }
    # yarn: without a factor, transformers (DeepSeek-V3's convention) takes the length ratio.
    factor = float(rope.get("factor") or max_len / original)
    attention_factor = rope.get("attention_factor")
    mscale, mscale_all_dim = rope.get("mscale"), rope.get("mscale_all_dim")
    if attention_factor is None and mscale and mscale_all_dim:
        # DeepSeek's form; transformers ignores mscale unless both are set.
        attention_factor = yarn_mscale(factor, mscale) / yarn_mscale(factor, mscale_all_dim)
    return fields | {
        "rope_scaling_factor": factor,
        "rope_original_max_len": original,
        # transformers reads 0/None betas as the defaults (`or`).
        "rope_beta_fast": float(rope.get("beta_fast") or 32.0),
        "rope_beta_slow": float(rope.get("beta_slow") or 1.0),
        "rope_attention_factor": None if attention_factor is None else float(attention_factor),
        "rope_yarn_truncate": bool(rope.get("truncate", True)),
    }


def rope_parameters_to_hf(cfg: ModelConfig) -> dict[str, Any]:
    """transformers 5's rope_parameters for cfg's rope_theta and scaling."""
    out: dict[str, Any] = {
        "rope_type": ROPE_SCALINGS_OUT[cfg.rope_scaling],
        "rope_theta": cfg.rope_theta,
    }
    if cfg.rope_scaling == "none":
        return out
    out["factor"] = cfg.rope_scaling_factor
    if cfg.rope_scaling == "llama3":
        out["low_freq_factor"] = cfg.rope_low_freq_factor
        out["high_freq_factor"] = cfg.rope_high_freq_factor
    if cfg.rope_scaling in ("llama3", "yarn"):
        out["original_max_position_embeddings"] = cfg.rope_original_max_len
    if cfg.rope_scaling == "yarn":
        out["beta_fast"] = cfg.rope_beta_fast
        out["beta_slow"] = cfg.rope_beta_slow
        if cfg.rope_attention_factor is not None:
            out["attention_factor"] = cfg.rope_attention_factor
        if not cfg.rope_yarn_truncate:
            out["truncate"] = False
    return out


def decoder_config(hf: dict[str, Any], arch: str, theta: float = 10000.0) -> dict[str, Any]:
    """ModelConfig fields every LLaMA-shaped config.json sets (`arch` names it in errors)."""
    act = get(hf, "hidden_act", "silu")
    require(act == "silu", f"config.json hidden_act={act!r}: {arch}'s gated MLP needs 'silu'.")
    d, heads = get(hf, "hidden_size"), get(hf, "num_attention_heads")
    return dict(
        family="decoder",
        vocab_size=get(hf, "vocab_size"),
        d_model=d,
        num_heads=heads,
        num_kv_heads=get(hf, "num_key_value_heads", heads),
        head_dim=get(hf, "head_dim", d // heads),
        d_ff=get(hf, "intermediate_size"),
        num_layers=get(hf, "num_hidden_layers"),
        max_len=get(hf, "max_position_embeddings"),
        position="rotary",
        **rope_fields(hf, theta),
        norm="rmsnorm",
        norm_eps=float(get(hf, "rms_norm_eps", 1e-6)),
        pre_norm=True,
        activation="swiglu",
        attention_dropout_rate=float(get(hf, "attention_dropout", 0.0)),
        tie_embeddings=bool(get(hf, "tie_word_embeddings", False)),
    )


def config_from_hf(hf: dict[str, Any]) -> ModelConfig:
    """Our ModelConfig for a LLaMA config.json."""
    fields = decoder_config(hf, "LLaMA")
    require(get(hf, "pretraining_tp", 1) == 1, "pretraining_tp != 1 is not supported.")
    attention_bias = bool(get(hf, "attention_bias", False))
    mlp_bias = bool(get(hf, "mlp_bias", False))
    require(
        attention_bias == mlp_bias,
        f"attention_bias={attention_bias} with mlp_bias={mlp_bias}: our use_bias covers both "
        "(mixed biases are not supported).",
    )
    return ModelConfig(**fields, use_bias=attention_bias)


def _attn_names(hf: str) -> dict[str, str]:
    return {k: f"{hf}.self_attn.{k}_proj" for k in ("q", "k", "v", "o")}


def decoder_params_from_hf(
    cfg: ModelConfig, reader: TensorReader, ffn: FfnIn, ignored: tuple[str, ...] = IGNORED
) -> Flat:
    """Flat unrolled params of a LLaMA-shaped checkpoint; `ffn` maps each layer's MLP/MoE."""
    d, v = cfg.d_model, cfg.vocab_size
    m = Mapper(reader)
    m.embedding("model.embed_tokens", "token_embed/embedding", v, d)
    for i in range(cfg.num_layers):
        hf, ours = f"model.layers.{i}", f"stack/layers_{i}"
        m.norm(f"{hf}.input_layernorm", f"{ours}/self_attn_norm", d, bias=False)
        m.norm(f"{hf}.post_attention_layernorm", f"{ours}/mlp_norm", d, bias=False)
        m.attention(
            _attn_names(hf),
            f"{ours}/self_attn",
            d,
            cfg.num_heads,
            cfg.kv_heads,
            cfg.head_size,
            cfg.use_bias,
        )
        ffn(m, cfg, hf, ours)
    m.norm("model.norm", "final_norm", d, bias=False)
    ignored = list(ignored)
    if cfg.tie_embeddings:
        ignored.append(r"lm_head\.weight")
    else:
        m.linear("lm_head", "head/lm_head", d, v, bias=False)
    reader.check_all_taken(ignored)
    return m.flat


def _mlp_from_hf(m: Mapper, cfg: ModelConfig, hf: str, ours: str) -> None:
    d, f = cfg.d_model, cfg.d_ff
    m.linear(f"{hf}.mlp.gate_proj", f"{ours}/mlp/wg", d, f, cfg.use_bias)
    m.linear(f"{hf}.mlp.up_proj", f"{ours}/mlp/wi", d, f, cfg.use_bias)
    m.linear(f"{hf}.mlp.down_proj", f"{ours}/mlp/wo", f, d, cfg.use_bias)


def params_from_hf(cfg: ModelConfig, reader: TensorReader) -> Flat:
    """Flat unrolled params from a LLaMA checkpoint."""
    return decoder_params_from_hf(cfg, reader, _mlp_from_hf)


def decoder_problems(cfg: ModelConfig, arch: str) -> list[str]:
    """Why cfg is not a LLaMA-shaped decoder (rotary, RMSNorm, SwiGLU, pre-norm, plain head)."""
    wants = dict(
        family="decoder",
        position="rotary",
        norm="rmsnorm",
        pre_norm=True,
        activation="swiglu",
        scale_embeddings=False,
    )
    problems = [
        f"{k}={getattr(cfg, k)!r} ({arch} needs {v!r})"
        for k, v in wants.items()
        if getattr(cfg, k) != v
    ]
    if cfg.logits_bias:
        problems.append(f"logits_bias=True ({arch}'s head has no bias)")
    return problems


def exportable(cfg: ModelConfig) -> list[str]:
    """Why cfg cannot be written as LLaMA (empty: it can)."""
    problems = decoder_problems(cfg, "LLaMA")
    if cfg.is_moe:
        problems.append(
            f"num_experts={cfg.num_experts} (a mixture of experts; LLaMA's MLP is dense)"
        )
    if cfg.attention_window:
        problems.append(
            f"attention_window={cfg.attention_window} (LLaMA has no sliding-window attention)"
        )
    return problems


def decoder_config_to_hf(
    cfg: ModelConfig, base: dict[str, Any], model_type: str, architectures: tuple[str, ...]
) -> dict[str, Any]:
    """The config.json fields every LLaMA-shaped architecture shares (extras kept from base)."""
    # RoPE keys outside rope_parameters would override it when transformers reads the file.
    stale = (
        "rope_scaling",
        "rope_theta",
        "original_max_position_embeddings",
        "partial_rotary_factor",
    )
    out = {k: v for k, v in base.items() if k not in stale}
    return {
        **out,
        "model_type": model_type,
        "architectures": list(architectures),
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.kv_heads,
        "head_dim": cfg.head_size,
        "intermediate_size": cfg.d_ff,
        "num_hidden_layers": cfg.num_layers,
        "max_position_embeddings": cfg.max_len,
        "rope_parameters": rope_parameters_to_hf(cfg),
        "rms_norm_eps": cfg.norm_eps,
        "hidden_act": "silu",
        "attention_dropout": cfg.attention_dropout_rate,
        "tie_word_embeddings": cfg.tie_embeddings,
    }


def config_to_hf(cfg: ModelConfig, base: dict[str, Any]) -> dict[str, Any]:
    """LLaMA config.json for cfg (token ids and other extras kept from `base`)."""
    return {
        **decoder_config_to_hf(cfg, base, MODEL_TYPE, ARCHITECTURES),
        "attention_bias": cfg.use_bias,
        "mlp_bias": cfg.use_bias,
        "pretraining_tp": 1,
    }


def decoder_params_to_hf(cfg: ModelConfig, flat: Flat, ffn: FfnOut) -> dict[str, np.ndarray]:
    """LLaMA-shaped tensors from flat unrolled params; `ffn` writes each layer's MLP/MoE."""
    w = Writer(flat)
    w.embedding("model.embed_tokens", "token_embed/embedding")
    for i in range(cfg.num_layers):
        hf, ours = f"model.layers.{i}", f"stack/layers_{i}"
        w.norm(f"{hf}.input_layernorm", f"{ours}/self_attn_norm", bias=False)
        w.norm(f"{hf}.post_attention_layernorm", f"{ours}/mlp_norm", bias=False)
        w.attention(_attn_names(hf), f"{ours}/self_attn", cfg.use_bias)
        ffn(w, cfg, hf, ours)
    w.norm("model.norm", "final_norm", bias=False)
    if not cfg.tie_embeddings:
        w.linear("lm_head", "head/lm_head", bias=False)
    return w.tensors


def _mlp_to_hf(w: Writer, cfg: ModelConfig, hf: str, ours: str) -> None:
    w.linear(f"{hf}.mlp.gate_proj", f"{ours}/mlp/wg", cfg.use_bias)
    w.linear(f"{hf}.mlp.up_proj", f"{ours}/mlp/wi", cfg.use_bias)
    w.linear(f"{hf}.mlp.down_proj", f"{ours}/mlp/wo", cfg.use_bias)


def params_to_hf(cfg: ModelConfig, flat: Flat) -> dict[str, np.ndarray]:
    """LlamaForCausalLM tensors from flat unrolled params."""
    return decoder_params_to_hf(cfg, flat, _mlp_to_hf)
