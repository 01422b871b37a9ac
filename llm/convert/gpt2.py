"""GPT-2 (GPT2LMHeadModel) <-> our pre-LN decoder with learned positions.

GPT-2's Conv1D stores weights [in, out] (our kernel layout) and fuses q/k/v
into one c_attn matrix whose columns are [q | k | v], each head-major.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from llm.convert.common import Mapper, Writer, activation_in, activation_out, get, require
from llm.convert.hf_files import TensorReader
from llm.convert.layout import Flat, split_heads_in, split_heads_out
from llm.models import ModelConfig

ARCHITECTURES = ("GPT2LMHeadModel",)
MODEL_TYPE = "gpt2"
# Causal-mask buffers that old GPT-2 checkpoints saved; recomputed here.
IGNORED = (r"(transformer\.)?h\.\d+\.attn\.(bias|masked_bias)",)


def config_from_hf(hf: dict[str, Any]) -> ModelConfig:
    """Our ModelConfig for a GPT-2 config.json."""
    require(get(hf, "scale_attn_weights", True), "scale_attn_weights=False is not supported.")
    require(
        not get(hf, "scale_attn_by_inverse_layer_idx", False),
        "scale_attn_by_inverse_layer_idx=True is not supported.",
    )
    require(not get(hf, "add_cross_attention", False), "add_cross_attention=True is not supported.")
    d = get(hf, "n_embd")
    return ModelConfig(
        family="decoder",
        vocab_size=get(hf, "vocab_size"),
        d_model=d,
        num_heads=get(hf, "n_head"),
        d_ff=get(hf, "n_inner", 4 * d),
        num_layers=get(hf, "n_layer"),
        max_len=get(hf, "n_positions"),
        position="learned",
        norm="layernorm",
        norm_eps=float(get(hf, "layer_norm_epsilon", 1e-5)),
        pre_norm=True,
        activation=activation_in(get(hf, "activation_function", "gelu_new"), "activation_function"),
        dropout_rate=float(get(hf, "resid_pdrop", 0.0)),
        attention_dropout_rate=float(get(hf, "attn_pdrop", 0.0)),
        tie_embeddings=bool(get(hf, "tie_word_embeddings", True)),
        use_bias=True,
    )


def _prefix(reader: TensorReader) -> str:
    # GPT2LMHeadModel saves 'transformer.h.0...'; the original hub files saved GPT2Model ('h.0...').
    return "transformer." if any(n.startswith("transformer.") for n in reader.names()) else ""


def params_from_hf(cfg: ModelConfig, reader: TensorReader) -> Flat:
    """Flat unrolled params from a GPT-2 checkpoint."""
    p = _prefix(reader)
    d, h, k, f, v = cfg.d_model, cfg.num_heads, cfg.head_size, cfg.d_ff, cfg.vocab_size
    m = Mapper(reader)
    m.embedding(f"{p}wte", "token_embed/embedding", v, d)
    m.embedding(f"{p}wpe", "embedding/pos_embed/embedding", cfg.max_len, d)
    for i in range(cfg.num_layers):
        hf, ours = f"{p}h.{i}", f"stack/layers_{i}"
        m.norm(f"{hf}.ln_1", f"{ours}/self_attn_norm", d)
        m.norm(f"{hf}.ln_2", f"{ours}/mlp_norm", d)
        qkv = reader.take(f"{hf}.attn.c_attn.weight", (d, 3 * h * k))
        qkv_bias = reader.take(f"{hf}.attn.c_attn.bias", (3 * h * k,))
        for j, name in enumerate(("query", "key", "value")):
            cols = slice(j * h * k, (j + 1) * h * k)
            m.flat[f"{ours}/self_attn/{name}"] = split_heads_in(qkv[:, cols], h, k)
            m.flat[f"{ours}/self_attn/{name}_bias"] = qkv_bias[cols].reshape(h, k)
        proj = reader.take(f"{hf}.attn.c_proj.weight", (h * k, d))
        m.flat[f"{ours}/self_attn/out"] = split_heads_out(proj, h, k)
        m.flat[f"{ours}/self_attn/out_bias"] = reader.take(f"{hf}.attn.c_proj.bias", (d,))
        # Conv1D is already [in, out].
        m.flat[f"{ours}/mlp/wi/kernel"] = reader.take(f"{hf}.mlp.c_fc.weight", (d, f))
        m.flat[f"{ours}/mlp/wi/bias"] = reader.take(f"{hf}.mlp.c_fc.bias", (f,))
        m.flat[f"{ours}/mlp/wo/kernel"] = reader.take(f"{hf}.mlp.c_proj.weight", (f, d))
        m.flat[f"{ours}/mlp/wo/bias"] = reader.take(f"{hf}.mlp.c_proj.bias", (d,))
    m.norm(f"{p}ln_f", "final_norm", d)
    ignored = list(IGNORED)
    if cfg.tie_embeddings:
        ignored.append(r"lm_head\.weight")  # a tied copy some savers write
    else:
        m.linear("lm_head", "head/lm_head", d, v, bias=False)
    reader.check_all_taken(ignored)
    return m.flat


def exportable(cfg: ModelConfig) -> list[str]:
    """Why cfg cannot be written as GPT-2 (empty: it can)."""
    problems = []
    wants = dict(family="decoder", position="learned", norm="layernorm", pre_norm=True)
    problems += [
        f"{k}={getattr(cfg, k)!r} (GPT-2 needs {v!r})"
        for k, v in wants.items()
        if getattr(cfg, k) != v
    ]
    if cfg.activation == "swiglu":
        problems.append("activation='swiglu' (GPT-2's MLP is not gated)")
    if not cfg.use_bias:
        problems.append("use_bias=False (GPT-2 has biases)")
    if cfg.kv_heads != cfg.num_heads or cfg.head_size * cfg.num_heads != cfg.d_model:
        problems.append("grouped-query attention or head_dim * num_heads != d_model")
    if cfg.logits_bias:
        problems.append("logits_bias=True (GPT-2's head has no bias)")
    if cfg.attention_window:
        problems.append(
            f"attention_window={cfg.attention_window} (GPT-2 has no sliding-window attention)"
        )
    return problems


def config_to_hf(cfg: ModelConfig, base: dict[str, Any]) -> dict[str, Any]:
    """GPT-2 config.json for cfg (token ids and other extras kept from `base`)."""
    return {
        **base,
        "model_type": MODEL_TYPE,
        "architectures": list(ARCHITECTURES),
        "vocab_size": cfg.vocab_size,
        "n_embd": cfg.d_model,
        "n_head": cfg.num_heads,
        "n_inner": cfg.d_ff,
        "n_layer": cfg.num_layers,
        "n_positions": cfg.max_len,
        "layer_norm_epsilon": cfg.norm_eps,
        "activation_function": activation_out(cfg.activation),
        "resid_pdrop": cfg.dropout_rate,
        "embd_pdrop": cfg.dropout_rate,
        "attn_pdrop": cfg.attention_dropout_rate,
        "tie_word_embeddings": cfg.tie_embeddings,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "add_cross_attention": False,
    }


def params_to_hf(cfg: ModelConfig, flat: Flat) -> dict[str, np.ndarray]:
    """GPT2LMHeadModel tensors from flat unrolled params."""
    w = Writer(flat)
    w.embedding("transformer.wte", "token_embed/embedding")
    w.embedding("transformer.wpe", "embedding/pos_embed/embedding")
    for i in range(cfg.num_layers):
        hf, ours = f"transformer.h.{i}", f"stack/layers_{i}"
        w.norm(f"{hf}.ln_1", f"{ours}/self_attn_norm")
        w.norm(f"{hf}.ln_2", f"{ours}/mlp_norm")
        names = ("query", "key", "value")
        w.tensors[f"{hf}.attn.c_attn.weight"] = np.concatenate(
            [flat[f"{ours}/self_attn/{n}"].reshape(cfg.d_model, -1) for n in names], axis=1
        )
        w.tensors[f"{hf}.attn.c_attn.bias"] = np.concatenate(
            [flat[f"{ours}/self_attn/{n}_bias"].reshape(-1) for n in names]
        )
        w.tensors[f"{hf}.attn.c_proj.weight"] = flat[f"{ours}/self_attn/out"].reshape(
            -1, cfg.d_model
        )
        w.tensors[f"{hf}.attn.c_proj.bias"] = flat[f"{ours}/self_attn/out_bias"]
        w.tensors[f"{hf}.mlp.c_fc.weight"] = flat[f"{ours}/mlp/wi/kernel"]
        w.tensors[f"{hf}.mlp.c_fc.bias"] = flat[f"{ours}/mlp/wi/bias"]
        w.tensors[f"{hf}.mlp.c_proj.weight"] = flat[f"{ours}/mlp/wo/kernel"]
        w.tensors[f"{hf}.mlp.c_proj.bias"] = flat[f"{ours}/mlp/wo/bias"]
    w.norm("transformer.ln_f", "final_norm")
    if not cfg.tie_embeddings:
        w.linear("lm_head", "head/lm_head", bias=False)
    return w.tensors
