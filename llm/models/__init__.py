"""Transformer models: ModelConfig, build_model, dummy_batch, count_params.

Usage (what llm.train and llm.decode rely on):
- init: ``model.init({'params': rng}, dummy_batch(cfg, B, Li, Lt), deterministic=True,
  method='loss_terms')`` (this creates every head, e.g. BERT's NSP head); the
  params are ``nn.LogicallyPartitioned`` boxes with logical axis names.
- train: ``model.apply({'params': p}, batch, deterministic=False,
  method='loss_terms', rngs={'dropout': key})``; the only rng collection used
  in apply is 'dropout' (and 'params' at init).
- decode: init the 'cache' collection with full-length zero inputs and
  ``decode=True``, then apply with ``decode=True, mutable=['cache']`` one token
  (or a prefill chunk) at a time. Cache leaves are [B, ...] with unrolled
  layers and [layers, B, ...] with scan_layers; a single int32 scalar
  ('index') counts the tokens written. Enc-dec: ``encode(encoder_inputs)``, then
  ``decode(encoded, encoder_inputs, decoder_inputs, decode=True)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from llm.models.config import ModelConfig
from llm.models.transformer import Decoder, Encoder, EncoderDecoder

__all__ = [
    "ModelConfig",
    "Decoder",
    "Encoder",
    "EncoderDecoder",
    "as_config",
    "build_model",
    "dummy_batch",
    "init_variables",
    "count_params",
    "count_active_params",
]


def as_config(cfg: ModelConfig | Mapping[str, Any]) -> ModelConfig:
    """Accepts a ModelConfig or a dict/ConfigDict of its fields."""
    return cfg if isinstance(cfg, ModelConfig) else ModelConfig.from_dict(cfg)


def build_model(cfg: ModelConfig | Mapping[str, Any]) -> nn.Module:
    """The family's top-level module (Decoder, Encoder or EncoderDecoder)."""
    cfg = as_config(cfg)
    return {"decoder": Decoder, "encoder": Encoder, "encoder_decoder": EncoderDecoder}[cfg.family](
        cfg
    )


def dummy_batch(
    cfg: ModelConfig | Mapping[str, Any],
    batch_size: int,
    inputs_len: int,
    targets_len: int | None = None,
) -> dict[str, jax.Array]:
    """A zero batch in the family's format (segment ids 1, weights 1), for init/eval_shape."""
    cfg = as_config(cfg)
    targets_len = inputs_len if targets_len is None else targets_len

    def ints(length: int, value: int = 0) -> jax.Array:
        return jnp.full((batch_size, length), value, jnp.int32)

    def positions(length: int) -> jax.Array:
        return jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32), (batch_size, length))

    if cfg.family == "encoder_decoder":
        return {
            "encoder_inputs": ints(inputs_len),
            "encoder_segment_ids": ints(inputs_len, 1),
            "encoder_positions": positions(inputs_len),
            "decoder_inputs": ints(targets_len),
            "decoder_segment_ids": ints(targets_len, 1),
            "decoder_positions": positions(targets_len),
            "targets": ints(targets_len),
            "weights": jnp.ones((batch_size, targets_len), jnp.float32),
        }
    batch = {
        "inputs": ints(inputs_len),
        "targets": ints(inputs_len),
        "weights": jnp.ones((batch_size, inputs_len), jnp.float32),
        "segment_ids": ints(inputs_len, 1),
        "positions": positions(inputs_len),
    }
    if cfg.family != "encoder":
        return batch
    batch["token_type_ids"] = ints(inputs_len)
    rows_int, rows_one = jnp.zeros((batch_size,), jnp.int32), jnp.ones((batch_size,), jnp.float32)
    if cfg.encoder_head == "mlm":
        batch["nsp_labels"] = rows_int
        return batch
    del batch["targets"], batch["weights"]
    if cfg.encoder_head == "classification":
        batch.update(labels=rows_int, label_weights=rows_one)
    else:
        batch.update(start_positions=rows_int, end_positions=rows_int, span_weights=rows_one)
    return batch


def init_variables(
    cfg: ModelConfig | Mapping[str, Any],
    rng: jax.Array,
    batch: Mapping[str, jax.Array] | None = None,
) -> dict[str, Any]:
    """model.init through loss_terms (creates every head's params); boxed logical metadata kept."""
    cfg = as_config(cfg)
    model = build_model(cfg)
    if batch is None:
        batch = dummy_batch(cfg, 1, min(cfg.max_len, 8))
    return model.init({"params": rng}, batch, deterministic=True, method=model.loss_terms)


def count_params(cfg: ModelConfig | Mapping[str, Any]) -> int:
    """Number of parameters, from jax.eval_shape (allocates nothing)."""
    cfg = as_config(cfg)
    shapes = jax.eval_shape(lambda rng: init_variables(cfg, rng), jax.random.key(0))
    leaves = jax.tree.leaves(nn.meta.unbox(shapes["params"]))
    return int(sum(np.prod(x.shape, dtype=np.int64) for x in leaves))


def count_active_params(cfg: ModelConfig | Mapping[str, Any]) -> int:
    """Parameters one token's forward pass multiplies by (what MoE papers call active).

    All parameters but the experts a token is not routed to and the input embedding
    table of an untied model (a lookup, no matmul; a tied table is the output head and
    counts). A dense model's count is its total less that table.
    """
    cfg = as_config(cfg)
    total = count_params(cfg)
    mats = 3 if cfg.activation == "swiglu" else 2
    unrouted = cfg.num_experts - cfg.experts_per_token if cfg.is_moe else 0
    idle_experts = cfg.moe_layers * unrouted * mats * cfg.d_model * cfg.expert_hidden
    lookup = 0 if cfg.tie_embeddings else cfg.vocab_size * cfg.d_model
    return total - idle_experts - lookup
