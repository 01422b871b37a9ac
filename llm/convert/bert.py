"""BERT <-> our post-LN encoder, with each of its heads.

BertForMaskedLM / BertForPreTraining <-> encoder_head='mlm'; BertForSequenceClassification
<-> 'classification' (pooler + classifier); BertForQuestionAnswering <-> 'span'
(qa_outputs). A BertForMaskedLM checkpoint has no pooler/NSP head; those of our Encoder
then come from its init with a fixed seed (they do not affect MLM logits). Importing a
pretraining checkpoint with encoder_head overridden to a fine-tuning head keeps the
encoder (and pooler) and initialises the new head the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from llm.convert.common import Mapper, Writer, activation_in, activation_out, get, require
from llm.convert.hf_files import TensorReader
from llm.convert.layout import Flat
from llm.models import ModelConfig

ARCHITECTURES = (
    "BertForMaskedLM",
    "BertForPreTraining",
    "BertForSequenceClassification",
    "BertForQuestionAnswering",
)
# Our encoder_head of each architecture, and the architecture each head exports as.
HEAD_OF_ARCHITECTURE = {
    "BertForMaskedLM": "mlm",
    "BertForPreTraining": "mlm",
    "BertForSequenceClassification": "classification",
    "BertForQuestionAnswering": "span",
}
ARCHITECTURE_OF_HEAD = {
    "mlm": "BertForPreTraining",
    "classification": "BertForSequenceClassification",
    "span": "BertForQuestionAnswering",
}
MODEL_TYPE = "bert"
IGNORED = (r"bert\.embeddings\.position_ids",)


def config_from_hf(hf: dict[str, Any]) -> ModelConfig:
    """Our ModelConfig for a BERT config.json."""
    kind = get(hf, "position_embedding_type", "absolute")
    require(kind == "absolute", f"position_embedding_type={kind!r} is not supported.")
    require(not get(hf, "is_decoder", False), "is_decoder=True (a BERT decoder) is not supported.")
    archs = hf.get("architectures") or ["BertForMaskedLM"]
    head = HEAD_OF_ARCHITECTURE.get(archs[0], "mlm")
    num_labels = len(hf.get("id2label") or {}) or int(hf.get("num_labels", 2))
    if head == "classification":
        require(
            num_labels >= 2 and hf.get("problem_type") != "regression",
            f"a regression head (num_labels={num_labels}, problem_type="
            f"{hf.get('problem_type')!r}) is not supported; only classification.",
        )
    if head == "span":
        require(num_labels == 2, f"a QA head with num_labels={num_labels} (not start/end).")
    return ModelConfig(
        family="encoder",
        vocab_size=get(hf, "vocab_size"),
        d_model=get(hf, "hidden_size"),
        num_heads=get(hf, "num_attention_heads"),
        d_ff=get(hf, "intermediate_size"),
        num_layers=get(hf, "num_hidden_layers"),
        max_len=get(hf, "max_position_embeddings"),
        position="learned",
        norm="layernorm",
        norm_eps=float(get(hf, "layer_norm_eps", 1e-12)),
        pre_norm=False,
        activation=activation_in(get(hf, "hidden_act", "gelu"), "hidden_act"),
        dropout_rate=float(get(hf, "hidden_dropout_prob", 0.0)),
        attention_dropout_rate=float(get(hf, "attention_probs_dropout_prob", 0.0)),
        tie_embeddings=bool(get(hf, "tie_word_embeddings", True)),
        use_bias=True,
        type_vocab_size=get(hf, "type_vocab_size", 2),
        encoder_head=head,
        num_labels=max(num_labels, 2),
    )


def _attn_names(hf: str) -> dict[str, str]:
    return {
        "q": f"{hf}.attention.self.query",
        "k": f"{hf}.attention.self.key",
        "v": f"{hf}.attention.self.value",
        "o": f"{hf}.attention.output.dense",
    }


def params_from_hf(cfg: ModelConfig, reader: TensorReader) -> Flat:
    """Flat unrolled params from a BERT checkpoint."""
    d, f, v, h = cfg.d_model, cfg.d_ff, cfg.vocab_size, cfg.num_heads
    m = Mapper(reader)
    m.embedding("bert.embeddings.word_embeddings", "token_embed/embedding", v, d)
    m.embedding(
        "bert.embeddings.position_embeddings", "embedding/pos_embed/embedding", cfg.max_len, d
    )
    m.embedding(
        "bert.embeddings.token_type_embeddings",
        "embedding/type_embed/embedding",
        cfg.type_vocab_size,
        d,
    )
    m.norm("bert.embeddings.LayerNorm", "embedding/embed_norm", d)
    for i in range(cfg.num_layers):
        hf, ours = f"bert.encoder.layer.{i}", f"stack/layers_{i}"
        m.attention(_attn_names(hf), f"{ours}/self_attn", d, h, h, cfg.head_size, bias=True)
        m.norm(f"{hf}.attention.output.LayerNorm", f"{ours}/self_attn_norm", d)
        m.linear(f"{hf}.intermediate.dense", f"{ours}/mlp/wi", d, f, bias=True)
        m.linear(f"{hf}.output.dense", f"{ours}/mlp/wo", f, d, bias=True)
        m.norm(f"{hf}.output.LayerNorm", f"{ours}/mlp_norm", d)
    ignored = list(IGNORED)
    head = cfg.encoder_head
    if head == "mlm":
        m.linear("cls.predictions.transform.dense", "mlm_transform", d, d, bias=True)
        m.norm("cls.predictions.transform.LayerNorm", "mlm_norm", d)
        m.flat["mlm_bias"] = reader.take(
            "cls.predictions.bias", (v,), ["cls.predictions.decoder.bias"]
        )
        ignored.append(r"cls\.predictions\.decoder\.bias")
        if cfg.tie_embeddings:
            ignored.append(r"cls\.predictions\.decoder\.weight")
        else:
            m.linear("cls.predictions.decoder", "mlm_decoder", d, v, bias=False)
        if reader.has("cls.seq_relationship.weight"):
            m.linear("cls.seq_relationship", "nsp_classifier", d, 2, bias=True)
    else:
        # A pretraining checkpoint imported for fine-tuning: its MLM/NSP heads are not used.
        ignored.append(r"cls\..*")
    if head == "span":
        ignored.append(r"bert\.pooler\..*")  # BertForQuestionAnswering has no pooler
    elif reader.has("bert.pooler.dense.weight"):
        m.linear("bert.pooler.dense", "pooler", d, d, bias=True)
    if head == "classification" and reader.has("classifier.weight"):
        m.linear("classifier", "classifier", d, cfg.num_labels, bias=True)
    if head == "span" and reader.has("qa_outputs.weight"):
        m.linear("qa_outputs", "qa_outputs", d, 2, bias=True)
    reader.check_all_taken(ignored)
    return m.flat


def exportable(cfg: ModelConfig) -> list[str]:
    """Why cfg cannot be written as BERT (empty: it can)."""
    wants = dict(
        family="encoder", position="learned", norm="layernorm", pre_norm=False, use_bias=True
    )
    problems = [
        f"{k}={getattr(cfg, k)!r} (BERT needs {v!r})"
        for k, v in wants.items()
        if getattr(cfg, k) != v
    ]
    if cfg.activation == "swiglu":
        problems.append("activation='swiglu' (BERT's MLP is not gated)")
    if cfg.kv_heads != cfg.num_heads or cfg.head_size * cfg.num_heads != cfg.d_model:
        problems.append("grouped-query attention or head_dim * num_heads != d_model")
    if cfg.attention_window:
        problems.append(
            f"attention_window={cfg.attention_window} (BERT has no sliding-window attention)"
        )
    return problems


def config_to_hf(cfg: ModelConfig, base: dict[str, Any]) -> dict[str, Any]:
    """BERT config.json for cfg: the architecture of its head (BertForPreTraining for MLM)."""
    labels = {}
    if cfg.encoder_head == "classification":
        labels = {
            "id2label": {str(i): f"LABEL_{i}" for i in range(cfg.num_labels)},
            "label2id": {f"LABEL_{i}": i for i in range(cfg.num_labels)},
        }
    return {
        **base,
        **labels,
        "model_type": MODEL_TYPE,
        "architectures": [ARCHITECTURE_OF_HEAD[cfg.encoder_head]],
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "num_attention_heads": cfg.num_heads,
        "intermediate_size": cfg.d_ff,
        "num_hidden_layers": cfg.num_layers,
        "max_position_embeddings": cfg.max_len,
        # BERT always has a token-type table; one zero row reproduces "no types" exactly.
        "type_vocab_size": max(cfg.type_vocab_size, 1),
        "layer_norm_eps": cfg.norm_eps,
        "hidden_act": activation_out(cfg.activation),
        "hidden_dropout_prob": cfg.dropout_rate,
        "attention_probs_dropout_prob": cfg.attention_dropout_rate,
        "tie_word_embeddings": cfg.tie_embeddings,
        "position_embedding_type": "absolute",
        "is_decoder": False,
    }


def params_to_hf(cfg: ModelConfig, flat: Flat) -> dict[str, np.ndarray]:
    """The tensors of the head's architecture (BertForMaskedLM loads BertForPreTraining's)."""
    w = Writer(flat)
    w.embedding("bert.embeddings.word_embeddings", "token_embed/embedding")
    w.embedding("bert.embeddings.position_embeddings", "embedding/pos_embed/embedding")
    if cfg.type_vocab_size:
        w.embedding("bert.embeddings.token_type_embeddings", "embedding/type_embed/embedding")
    else:
        w.tensors["bert.embeddings.token_type_embeddings.weight"] = np.zeros((1, cfg.d_model))
    w.norm("bert.embeddings.LayerNorm", "embedding/embed_norm")
    for i in range(cfg.num_layers):
        hf, ours = f"bert.encoder.layer.{i}", f"stack/layers_{i}"
        w.attention(_attn_names(hf), f"{ours}/self_attn", bias=True)
        w.norm(f"{hf}.attention.output.LayerNorm", f"{ours}/self_attn_norm")
        w.linear(f"{hf}.intermediate.dense", f"{ours}/mlp/wi", bias=True)
        w.linear(f"{hf}.output.dense", f"{ours}/mlp/wo", bias=True)
        w.norm(f"{hf}.output.LayerNorm", f"{ours}/mlp_norm")
    if cfg.encoder_head == "mlm":
        w.linear("cls.predictions.transform.dense", "mlm_transform", bias=True)
        w.norm("cls.predictions.transform.LayerNorm", "mlm_norm")
        w.tensors["cls.predictions.bias"] = flat["mlm_bias"]
        if not cfg.tie_embeddings:
            w.linear("cls.predictions.decoder", "mlm_decoder", bias=False)
        w.linear("cls.seq_relationship", "nsp_classifier", bias=True)
    if cfg.encoder_head in ("mlm", "classification"):
        w.linear("bert.pooler.dense", "pooler", bias=True)
    if cfg.encoder_head == "classification":
        w.linear("classifier", "classifier", bias=True)
    if cfg.encoder_head == "span":
        w.linear("qa_outputs", "qa_outputs", bias=True)
    return w.tensors
