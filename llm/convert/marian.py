"""Marian (MarianMTModel) <-> our post-LN encoder-decoder with split sinusoidal positions.

Marian is the AIAYN architecture with the sines and cosines of its position
signal in two halves (sinusoidal_layout='split'), a final_logits_bias
(logits_bias=True) and its pad id as decoder start; its positions are computed,
not stored.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from llm.convert.common import Mapper, Writer, activation_in, activation_out, get, require
from llm.convert.hf_files import TensorReader
from llm.convert.layout import Flat
from llm.models import ModelConfig

ARCHITECTURES = ("MarianMTModel",)
MODEL_TYPE = "marian"
# nn.LayerNorm's default: Marian does not configure it.
LAYER_NORM_EPS = 1e-5
IGNORED = (r"model\.(encoder|decoder)\.embed_positions\.weight",)


def config_from_hf(hf: dict[str, Any]) -> ModelConfig:
    """Our ModelConfig for a Marian config.json."""
    for a, b in (
        ("encoder_attention_heads", "decoder_attention_heads"),
        ("encoder_ffn_dim", "decoder_ffn_dim"),
    ):
        require(get(hf, a) == get(hf, b), f"{a} != {b} is not supported (one value for both).")
    vocab = get(hf, "vocab_size")
    decoder_vocab = get(hf, "decoder_vocab_size", vocab)
    require(decoder_vocab == vocab, "decoder_vocab_size != vocab_size is not supported.")
    share = bool(get(hf, "share_encoder_decoder_embeddings", True))
    tie = bool(get(hf, "tie_word_embeddings", True))
    require(
        share == tie,
        f"share_encoder_decoder_embeddings={share} with tie_word_embeddings={tie}: only "
        "all-shared or all-separate embeddings are supported.",
    )
    return ModelConfig(
        family="encoder_decoder",
        vocab_size=vocab,
        d_model=get(hf, "d_model"),
        num_heads=get(hf, "encoder_attention_heads"),
        d_ff=get(hf, "encoder_ffn_dim"),
        num_layers=get(hf, "encoder_layers"),
        num_encoder_layers=get(hf, "encoder_layers"),
        num_decoder_layers=get(hf, "decoder_layers"),
        max_len=get(hf, "max_position_embeddings"),
        position="sinusoidal",
        sinusoidal_layout="split",
        norm="layernorm",
        norm_eps=LAYER_NORM_EPS,
        pre_norm=False,
        activation=activation_in(get(hf, "activation_function", "gelu"), "activation_function"),
        dropout_rate=float(get(hf, "dropout", 0.0)),
        attention_dropout_rate=float(get(hf, "attention_dropout", 0.0)),
        tie_embeddings=tie,
        scale_embeddings=bool(get(hf, "scale_embedding", False)),
        logits_bias=True,
        use_bias=True,
        pad_id=get(hf, "pad_token_id"),
    )


def _attn(hf: str) -> dict[str, str]:
    return {"q": f"{hf}.q_proj", "k": f"{hf}.k_proj", "v": f"{hf}.v_proj", "o": f"{hf}.out_proj"}


def _layers(cfg: ModelConfig):
    """(hf prefix, our prefix, has cross-attention) of every layer."""
    for i in range(cfg.encoder_layers):
        yield f"model.encoder.layers.{i}", f"encoder_stack/layers_{i}", False
    for i in range(cfg.decoder_layers):
        yield f"model.decoder.layers.{i}", f"decoder_stack/layers_{i}", True


def params_from_hf(cfg: ModelConfig, reader: TensorReader) -> Flat:
    """Flat unrolled params from a Marian checkpoint."""
    d, f, v, h, k = cfg.d_model, cfg.d_ff, cfg.vocab_size, cfg.num_heads, cfg.head_size
    m = Mapper(reader)
    ignored = list(IGNORED)
    if cfg.tie_embeddings:
        aliases = ["model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight"]
        m.flat["token_embed/embedding"] = reader.take("model.shared.weight", (v, d), aliases)
        ignored.append(r"model\.(encoder|decoder)\.embed_tokens\.weight|lm_head\.weight")
    else:
        m.embedding("model.encoder.embed_tokens", "encoder_token_embed/embedding", v, d)
        m.embedding("model.decoder.embed_tokens", "decoder_token_embed/embedding", v, d)
        m.linear("lm_head", "head/lm_head", d, v, bias=False)
        ignored.append(r"model\.shared\.weight")
    for hf, ours, cross in _layers(cfg):
        m.attention(_attn(f"{hf}.self_attn"), f"{ours}/self_attn", d, h, h, k, bias=True)
        m.norm(f"{hf}.self_attn_layer_norm", f"{ours}/self_attn_norm", d)
        if cross:
            m.attention(_attn(f"{hf}.encoder_attn"), f"{ours}/cross_attn", d, h, h, k, bias=True)
            m.norm(f"{hf}.encoder_attn_layer_norm", f"{ours}/cross_attn_norm", d)
        m.linear(f"{hf}.fc1", f"{ours}/mlp/wi", d, f, bias=True)
        m.linear(f"{hf}.fc2", f"{ours}/mlp/wo", f, d, bias=True)
        m.norm(f"{hf}.final_layer_norm", f"{ours}/mlp_norm", d)
    m.flat["head/logits_bias"] = reader.take("final_logits_bias", (1, v)).reshape(v)
    reader.check_all_taken(ignored)
    return m.flat


def exportable(cfg: ModelConfig) -> list[str]:
    """Why cfg cannot be written as Marian (empty: it can)."""
    wants = dict(
        family="encoder_decoder",
        position="sinusoidal",
        sinusoidal_layout="split",
        norm="layernorm",
        norm_eps=LAYER_NORM_EPS,
        pre_norm=False,
        use_bias=True,
    )
    problems = [
        f"{k}={getattr(cfg, k)!r} (Marian needs {v!r})"
        for k, v in wants.items()
        if getattr(cfg, k) != v
    ]
    if cfg.activation == "swiglu":
        problems.append("activation='swiglu' (Marian's MLP is not gated)")
    if cfg.kv_heads != cfg.num_heads or cfg.head_size * cfg.num_heads != cfg.d_model:
        problems.append("grouped-query attention or head_dim * num_heads != d_model")
    if cfg.attention_window:
        problems.append(
            f"attention_window={cfg.attention_window} (Marian has no sliding-window attention)"
        )
    return problems


def config_to_hf(cfg: ModelConfig, base: dict[str, Any]) -> dict[str, Any]:
    """Marian config.json for cfg; token ids from `base`, else pad = decoder start = cfg.pad_id."""
    out = {
        "pad_token_id": cfg.pad_id,
        "decoder_start_token_id": cfg.pad_id,
        "eos_token_id": 0,
        "forced_eos_token_id": 0,
        **base,
    }
    return {
        **out,
        "model_type": MODEL_TYPE,
        "architectures": list(ARCHITECTURES),
        "is_encoder_decoder": True,
        "vocab_size": cfg.vocab_size,
        "decoder_vocab_size": cfg.vocab_size,
        "d_model": cfg.d_model,
        "encoder_attention_heads": cfg.num_heads,
        "decoder_attention_heads": cfg.num_heads,
        "encoder_ffn_dim": cfg.d_ff,
        "decoder_ffn_dim": cfg.d_ff,
        "encoder_layers": cfg.encoder_layers,
        "decoder_layers": cfg.decoder_layers,
        "max_position_embeddings": cfg.max_len,
        "activation_function": activation_out(cfg.activation),
        "dropout": cfg.dropout_rate,
        "attention_dropout": cfg.attention_dropout_rate,
        "activation_dropout": 0.0,
        "scale_embedding": cfg.scale_embeddings,
        "share_encoder_decoder_embeddings": cfg.tie_embeddings,
        "tie_word_embeddings": cfg.tie_embeddings,
    }


def params_to_hf(cfg: ModelConfig, flat: Flat) -> dict[str, np.ndarray]:
    """MarianMTModel tensors from flat unrolled params."""
    w = Writer(flat)
    if cfg.tie_embeddings:
        w.embedding("model.shared", "token_embed/embedding")
    else:
        w.embedding("model.encoder.embed_tokens", "encoder_token_embed/embedding")
        w.embedding("model.decoder.embed_tokens", "decoder_token_embed/embedding")
        w.linear("lm_head", "head/lm_head", bias=False)
    for hf, ours, cross in _layers(cfg):
        w.attention(_attn(f"{hf}.self_attn"), f"{ours}/self_attn", bias=True)
        w.norm(f"{hf}.self_attn_layer_norm", f"{ours}/self_attn_norm")
        if cross:
            w.attention(_attn(f"{hf}.encoder_attn"), f"{ours}/cross_attn", bias=True)
            w.norm(f"{hf}.encoder_attn_layer_norm", f"{ours}/cross_attn_norm")
        w.linear(f"{hf}.fc1", f"{ours}/mlp/wi", bias=True)
        w.linear(f"{hf}.fc2", f"{ours}/mlp/wo", bias=True)
        w.norm(f"{hf}.final_layer_norm", f"{ours}/mlp_norm")
    bias = flat.get("head/logits_bias", np.zeros((cfg.vocab_size,), np.float32))
    w.tensors["final_logits_bias"] = np.asarray(bias).reshape(1, -1)
    return w.tensors
