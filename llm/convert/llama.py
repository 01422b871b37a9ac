"""LLaMA-style decoders (LlamaForCausalLM) <-> our RMSNorm/SwiGLU/rotary decoder.

Hugging Face LLaMA weights rotate the two halves of each head (rotate_half), the
layout our apply_rotary uses, so q/k need no permutation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from llm.convert.common import Mapper, Writer, get, require
from llm.convert.hf_files import TensorReader
from llm.convert.layout import Flat
from llm.models import ModelConfig

ARCHITECTURES = ("LlamaForCausalLM",)
MODEL_TYPE = "llama"
IGNORED = (r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq",)


def _rope_theta(hf: dict[str, Any]) -> float:
    # transformers 5 nests RoPE settings in rope_parameters; 4.x had rope_theta/rope_scaling.
    rope = hf.get("rope_parameters") or {}
    scaling = hf.get("rope_scaling") or {}
    kind = rope.get("rope_type", scaling.get("rope_type", scaling.get("type", "default")))
    require(
        kind == "default",
        f"config.json rope_type={kind!r} (RoPE scaling) is not supported; only 'default'.",
    )
    return float(rope.get("rope_theta", hf.get("rope_theta", 10000.0)))


def config_from_hf(hf: dict[str, Any]) -> ModelConfig:
    """Our ModelConfig for a LLaMA config.json."""
    act = get(hf, "hidden_act", "silu")
    require(act == "silu", f"config.json hidden_act={act!r}: LLaMA's gated MLP needs 'silu'.")
    require(get(hf, "pretraining_tp", 1) == 1, "pretraining_tp != 1 is not supported.")
    attention_bias = bool(get(hf, "attention_bias", False))
    mlp_bias = bool(get(hf, "mlp_bias", False))
    require(
        attention_bias == mlp_bias,
        f"attention_bias={attention_bias} with mlp_bias={mlp_bias}: our use_bias covers both "
        "(mixed biases are not supported).",
    )
    d, heads = get(hf, "hidden_size"), get(hf, "num_attention_heads")
    return ModelConfig(
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
        rope_theta=_rope_theta(hf),
        norm="rmsnorm",
        norm_eps=float(get(hf, "rms_norm_eps", 1e-6)),
        pre_norm=True,
        activation="swiglu",
        attention_dropout_rate=float(get(hf, "attention_dropout", 0.0)),
        tie_embeddings=bool(get(hf, "tie_word_embeddings", False)),
        use_bias=attention_bias,
    )


def _attn_names(hf: str) -> dict[str, str]:
    return {k: f"{hf}.self_attn.{k}_proj" for k in ("q", "k", "v", "o")}


def params_from_hf(cfg: ModelConfig, reader: TensorReader) -> Flat:
    """Flat unrolled params from a LLaMA checkpoint."""
    d, f, v = cfg.d_model, cfg.d_ff, cfg.vocab_size
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
        m.linear(f"{hf}.mlp.gate_proj", f"{ours}/mlp/wg", d, f, cfg.use_bias)
        m.linear(f"{hf}.mlp.up_proj", f"{ours}/mlp/wi", d, f, cfg.use_bias)
        m.linear(f"{hf}.mlp.down_proj", f"{ours}/mlp/wo", f, d, cfg.use_bias)
    m.norm("model.norm", "final_norm", d, bias=False)
    ignored = list(IGNORED)
    if cfg.tie_embeddings:
        ignored.append(r"lm_head\.weight")
    else:
        m.linear("lm_head", "head/lm_head", d, v, bias=False)
    reader.check_all_taken(ignored)
    return m.flat


def exportable(cfg: ModelConfig) -> list[str]:
    """Why cfg cannot be written as LLaMA (empty: it can)."""
    wants = dict(
        family="decoder", position="rotary", norm="rmsnorm", pre_norm=True, activation="swiglu"
    )
    problems = [
        f"{k}={getattr(cfg, k)!r} (LLaMA needs {v!r})"
        for k, v in wants.items()
        if getattr(cfg, k) != v
    ]
    if cfg.logits_bias:
        problems.append("logits_bias=True (LLaMA's head has no bias)")
    return problems


def config_to_hf(cfg: ModelConfig, base: dict[str, Any]) -> dict[str, Any]:
    """LLaMA config.json for cfg (token ids and other extras kept from `base`)."""
    out = {k: v for k, v in base.items() if k not in ("rope_scaling", "rope_theta")}
    return {
        **out,
        "model_type": MODEL_TYPE,
        "architectures": list(ARCHITECTURES),
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.kv_heads,
        "head_dim": cfg.head_size,
        "intermediate_size": cfg.d_ff,
        "num_hidden_layers": cfg.num_layers,
        "max_position_embeddings": cfg.max_len,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "rms_norm_eps": cfg.norm_eps,
        "hidden_act": "silu",
        "attention_bias": cfg.use_bias,
        "mlp_bias": cfg.use_bias,
        "attention_dropout": cfg.attention_dropout_rate,
        "tie_word_embeddings": cfg.tie_embeddings,
        "pretraining_tp": 1,
    }


def params_to_hf(cfg: ModelConfig, flat: Flat) -> dict[str, np.ndarray]:
    """LlamaForCausalLM tensors from flat unrolled params."""
    w = Writer(flat)
    w.embedding("model.embed_tokens", "token_embed/embedding")
    for i in range(cfg.num_layers):
        hf, ours = f"model.layers.{i}", f"stack/layers_{i}"
        w.norm(f"{hf}.input_layernorm", f"{ours}/self_attn_norm", bias=False)
        w.norm(f"{hf}.post_attention_layernorm", f"{ours}/mlp_norm", bias=False)
        w.attention(_attn_names(hf), f"{ours}/self_attn", cfg.use_bias)
        w.linear(f"{hf}.mlp.gate_proj", f"{ours}/mlp/wg", cfg.use_bias)
        w.linear(f"{hf}.mlp.up_proj", f"{ours}/mlp/wi", cfg.use_bias)
        w.linear(f"{hf}.mlp.down_proj", f"{ours}/mlp/wo", cfg.use_bias)
    w.norm("model.norm", "final_norm", bias=False)
    if not cfg.tie_embeddings:
        w.linear("lm_head", "head/lm_head", bias=False)
    return w.tensors
