"""Decoder (GPT-2/GPT-3/LLaMA), Encoder (BERT) and EncoderDecoder (AIAYN) models."""

from __future__ import annotations

import math
from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from llm.models import context_parallel, mup
from llm.models.attention import Attention, padding_mask, segment_mask
from llm.models.config import ModelConfig
from llm.models.layers import (
    MLP,
    Dense,
    Embed,
    LayerNorm,
    activation_fn,
    constrain,
    make_norm,
    param_with_axes,
)
from llm.models.moe import MoE
from llm.models.positions import LearnedPositions, sinusoidal

Batch = Mapping[str, jax.Array]
LossTerms = dict[str, tuple[jax.Array, jax.Array, jax.Array]]
ACT_BLD = ("act_batch", "act_len", "act_embed")


class Block(nn.Module):
    """One Transformer layer: self-attention, optional cross-attention, feed-forward.

    Pre-LN: x + drop(f(norm(x))); post-LN: norm(x + drop(f(x))). Returns
    (x, None) so that the same class runs unrolled or under nn.scan.
    """

    cfg: ModelConfig
    cross: bool = False
    deterministic: bool = True
    decode: bool = False
    causal: bool = False
    # A mixture of experts (llm/models/moe.py) instead of the dense feed-forward block.
    moe: bool = False

    def _sublayer(self, x_BxLxD: jax.Array, fn, name: str) -> jax.Array:
        norm = make_norm(self.cfg, name=f"{name}_norm")
        drop = nn.Dropout(self.cfg.dropout_rate, deterministic=self.deterministic)
        if self.cfg.pre_norm:
            return x_BxLxD + drop(fn(norm(x_BxLxD)))
        return norm(x_BxLxD + drop(fn(x_BxLxD)))

    @nn.compact
    def __call__(
        self,
        x_BxLxD: jax.Array,
        self_mask: jax.Array | None,
        rope_positions_BxL: jax.Array | None,
        encoded_BxSxD: jax.Array | None,
        cross_mask: jax.Array | None,
        cache_index: jax.Array | None,
        self_segment_ids_BxL: jax.Array | None = None,
    ) -> tuple[jax.Array, None]:
        """Applies the layer; arguments are positional for nn.scan broadcasting.

        self_segment_ids_BxL (0 = padding) is what self_mask was built from: kernels that
        never materialise a [Q, K] mask (splash, ring attention) take the ids instead.
        """
        cfg = self.cfg
        self_attn = Attention(
            cfg, self.deterministic, self.decode, causal=self.causal, name="self_attn"
        )
        x_BxLxD = self._sublayer(
            x_BxLxD,
            lambda h: self_attn(
                h,
                h,
                self_mask,
                q_positions=rope_positions_BxL,
                kv_positions=rope_positions_BxL,
                cache_index=cache_index,
                segment_ids=self_segment_ids_BxL,
            ),
            "self_attn",
        )
        if self.cross:
            cross_attn = Attention(cfg, self.deterministic, decode=False, name="cross_attn")
            x_BxLxD = self._sublayer(
                x_BxLxD, lambda h: cross_attn(h, encoded_BxSxD, cross_mask), "cross_attn"
            )
        ffn = MoE(cfg, name="moe") if self.moe else MLP(cfg, name="mlp")
        x_BxLxD = self._sublayer(x_BxLxD, ffn, "mlp")
        return constrain(x_BxLxD, ACT_BLD), None


class Stack(nn.Module):
    """num_layers Blocks, unrolled (layers_0, layers_1, ...) or scanned ('layers' axis).

    An MoE model's first_dense_layers dense layers come first, always unrolled
    (dense_layers_0, ...); its MoE layers are `layers`, so both keep one homogeneous scan.
    """

    cfg: ModelConfig
    num_layers: int
    cross: bool = False
    # Causal self-attention (decoders); the causal mask is built inside Attention.
    causal: bool = False

    @nn.compact
    def __call__(
        self,
        x_BxLxD: jax.Array,
        self_mask: jax.Array | None = None,
        rope_positions_BxL: jax.Array | None = None,
        encoded_BxSxD: jax.Array | None = None,
        cross_mask: jax.Array | None = None,
        cache_index: jax.Array | None = None,
        self_segment_ids_BxL: jax.Array | None = None,
        *,
        deterministic: bool = True,
        decode: bool = False,
    ) -> jax.Array:
        """Runs the layers; the final norm of pre-LN models is applied by the caller."""
        cfg = self.cfg
        block = Block
        if cfg.remat != "none":
            policy = (
                None
                if cfg.remat == "full"
                else jax.checkpoint_policies.dots_with_no_batch_dims_saveable
            )
            block = nn.remat(block, policy=policy, prevent_cse=not cfg.scan_layers)
        args = (
            self_mask,
            rope_positions_BxL,
            encoded_BxSxD,
            cross_mask,
            cache_index,
            self_segment_ids_BxL,
        )
        dense_first = cfg.first_dense_layers if cfg.is_moe else 0
        for i in range(dense_first):
            x_BxLxD, _ = block(
                cfg, self.cross, deterministic, decode, causal=self.causal, name=f"dense_layers_{i}"
            )(x_BxLxD, *args)
        num_layers, moe = self.num_layers - dense_first, cfg.is_moe
        if cfg.scan_layers:
            scanned = nn.scan(
                block,
                # Scanned cache leaves are [layers, B, ...]: llm.decode reorders beams
                # along the batch axis 1 for them (cache_batch_axis).
                variable_axes={"params": 0, "cache": 0, "moe": 0},
                split_rngs={"params": True, "dropout": True},
                in_axes=(nn.broadcast,) * len(args),
                length=num_layers,
                metadata_params={nn.PARTITION_NAME: "layers"},
            )
            x_BxLxD, _ = scanned(
                cfg, self.cross, deterministic, decode, causal=self.causal, moe=moe, name="layers"
            )(x_BxLxD, *args)
        else:
            for i in range(num_layers):
                x_BxLxD, _ = block(
                    cfg,
                    self.cross,
                    deterministic,
                    decode,
                    causal=self.causal,
                    moe=moe,
                    name=f"layers_{i}",
                )(x_BxLxD, *args)
        return x_BxLxD


class DecodeIndex(nn.Module):
    """Position of the next token in the KV cache ('cache' collection)."""

    @nn.compact
    def __call__(self, length: int) -> jax.Array | None:
        """Returns the current index and advances it; None on the init call."""
        ready = self.has_variable("cache", "index")
        index = self.variable("cache", "index", lambda: jnp.zeros((), jnp.int32))
        if not ready:
            return None
        current = index.value
        index.value = current + length
        return current


def _default_positions(batch: int, length: int, offset: jax.Array | None = None) -> jax.Array:
    pos_BxL = jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32)[None], (batch, length))
    return pos_BxL if offset is None else pos_BxL + offset


def _embed_stddev(cfg: ModelConfig) -> float:
    # Scaled embeddings (AIAYN) are initialised at 1/sqrt(d) so that x*sqrt(d) has unit scale.
    return cfg.d_model**-0.5 if cfg.scale_embeddings else 0.02


class _Embedding(nn.Module):
    """Token (+ position, + token type) embedding, optional norm, dropout."""

    cfg: ModelConfig
    token_embed: Embed
    with_types: bool = False
    with_norm: bool = False

    @nn.compact
    def __call__(
        self,
        tokens_BxL: jax.Array,
        positions_BxL: jax.Array,
        token_type_ids_BxL: jax.Array | None,
        deterministic: bool,
    ) -> jax.Array:
        """Returns x_BxLxD in the compute dtype."""
        cfg = self.cfg
        x_BxLxD = self.token_embed(tokens_BxL)
        if cfg.scale_embeddings:
            x_BxLxD = x_BxLxD * jnp.asarray(math.sqrt(cfg.d_model), x_BxLxD.dtype)
        if cfg.position == "learned":
            x_BxLxD = x_BxLxD + LearnedPositions(
                cfg.max_len, cfg.d_model, cfg.compute_dtype, cfg.params_dtype, name="pos_embed"
            )(positions_BxL)
        elif cfg.position == "sinusoidal":
            pe_BxLxD = sinusoidal(positions_BxL, cfg.d_model, layout=cfg.sinusoidal_layout)
            x_BxLxD = x_BxLxD + pe_BxLxD.astype(x_BxLxD.dtype)
        if self.with_types and cfg.type_vocab_size > 0:
            if token_type_ids_BxL is None:
                token_type_ids_BxL = jnp.zeros_like(tokens_BxL)
            x_BxLxD = x_BxLxD + Embed(
                cfg.type_vocab_size,
                cfg.d_model,
                cfg.compute_dtype,
                cfg.params_dtype,
                axes=("type_vocab", "embed"),
                name="type_embed",
            )(token_type_ids_BxL)
        if self.with_norm:
            x_BxLxD = make_norm(self.cfg, name="embed_norm")(x_BxLxD)
        x_BxLxD = nn.Dropout(cfg.dropout_rate)(x_BxLxD, deterministic=deterministic)
        return constrain(x_BxLxD.astype(cfg.compute_dtype), ACT_BLD)


class _LMHead(nn.Module):
    """Final projection to the vocabulary: tied (embedding^T) or untied, float32 logits."""

    cfg: ModelConfig
    token_embed: Embed

    @nn.compact
    def __call__(self, x_BxLxD: jax.Array) -> jax.Array:
        """Returns logits_BxLxV in float32."""
        cfg = self.cfg
        if cfg.tie_embeddings:
            logits_BxLxV = self.token_embed.attend(x_BxLxD)
        else:
            logits_BxLxV = Dense(
                cfg.vocab_size,
                ("embed", "vocab"),
                False,
                jnp.float32,
                cfg.params_dtype,
                name="lm_head",
            )(x_BxLxD.astype(jnp.float32))
        if cfg.logits_bias:
            bias_V = param_with_axes(
                self,
                "logits_bias",
                nn.initializers.zeros,
                (cfg.vocab_size,),
                ("vocab",),
                cfg.params_dtype,
            )
            logits_BxLxV = logits_BxLxV + bias_V.astype(jnp.float32)
        if mup.enabled(cfg):
            logits_BxLxV = logits_BxLxV * mup.logits_multiplier(cfg)
        return constrain(logits_BxLxV, ("act_batch", "act_len", "act_vocab"))


def _run_tower(
    embedding: _Embedding,
    stack: Stack,
    final_norm: LayerNorm | None,
    tokens_BxL: jax.Array,
    *,
    positions_BxL: jax.Array | None,
    segment_ids_BxL: jax.Array | None,
    token_type_ids_BxL: jax.Array | None = None,
    encoded_BxSxD: jax.Array | None = None,
    cross_mask: jax.Array | None = None,
    cache_index: jax.Array | None = None,
    deterministic: bool = True,
    decode: bool = False,
) -> jax.Array:
    """Embed, segment-masked stack and (pre-LN) final norm: the body every tower shares.

    A plain function over the caller's submodules rather than a module of its own, so
    that parameter paths ('embedding', 'stack', 'final_norm', ...) stay where they are.
    """
    b, length = tokens_BxL.shape
    if positions_BxL is None:
        positions_BxL = _default_positions(b, length, cache_index)
    zigzag = context_parallel.zigzag_shards(stack.cfg, stack.causal, decode)
    if zigzag:
        # Causal attention over the context shards is balanced in zig-zag order: the
        # inputs are reordered once here, the output put back in natural order below.
        tokens_BxL, positions_BxL, segment_ids_BxL, token_type_ids_BxL = (
            None if x is None else context_parallel.to_zigzag(x, zigzag)
            for x in (tokens_BxL, positions_BxL, segment_ids_BxL, token_type_ids_BxL)
        )
        if cross_mask is not None and cross_mask.shape[2] == length:
            cross_mask = context_parallel.to_zigzag(cross_mask, zigzag, axis=2)
    x_BxLxD = embedding(tokens_BxL, positions_BxL, token_type_ids_BxL, deterministic)
    # Causality is the stack's (causal=True) and, over the KV cache, Attention's; this
    # only separates packed segments, which a cached decode step does not track.
    if cache_index is not None:
        segment_ids_BxL = None
    # Kernels that take segment ids leave this mask unused, and XLA drops it.
    self_mask = None if segment_ids_BxL is None else segment_mask(segment_ids_BxL, segment_ids_BxL)
    rope_BxL = positions_BxL if stack.cfg.position == "rotary" else None
    x_BxLxD = stack(
        x_BxLxD,
        self_mask,
        rope_BxL,
        encoded_BxSxD,
        cross_mask,
        cache_index,
        segment_ids_BxL,
        deterministic=deterministic,
        decode=decode,
    )
    if zigzag:
        x_BxLxD = context_parallel.from_zigzag(x_BxLxD, zigzag)
    return x_BxLxD if final_norm is None else final_norm(x_BxLxD)


class Decoder(nn.Module):
    """Causal LM (GPT-2/GPT-3/LLaMA by config) with packed-segment masks and a KV cache."""

    cfg: ModelConfig

    def setup(self) -> None:
        cfg = self.cfg
        self.token_embed = Embed(
            cfg.vocab_size, cfg.d_model, cfg.compute_dtype, cfg.params_dtype, _embed_stddev(cfg)
        )
        self.embedding = _Embedding(cfg, self.token_embed)
        self.decode_index = DecodeIndex()
        self.stack = Stack(cfg, cfg.num_layers, causal=True)
        # Post-LN layers end normalised already.
        self.final_norm = make_norm(cfg) if cfg.pre_norm else None
        self.head = _LMHead(cfg, self.token_embed)

    def __call__(
        self,
        tokens_BxL: jax.Array,
        *,
        positions: jax.Array | None = None,
        segment_ids: jax.Array | None = None,
        deterministic: bool = True,
        decode: bool = False,
    ) -> jax.Array:
        """Returns logits_BxLxV (float32); decode=True reads/writes the 'cache' collection."""
        cache_index = self.decode_index(tokens_BxL.shape[1]) if decode else None
        x_BxLxD = _run_tower(
            self.embedding,
            self.stack,
            self.final_norm,
            tokens_BxL,
            positions_BxL=positions,
            segment_ids_BxL=segment_ids,
            cache_index=cache_index,
            deterministic=deterministic,
            decode=decode,
        )
        return self.head(x_BxLxD)

    def loss_terms(self, batch: Batch, *, deterministic: bool = True) -> LossTerms:
        """{'lm': (logits_BxLxV, targets_BxL, weights_BxL)} for a causal-LM batch."""
        logits_BxLxV = self(
            batch["inputs"],
            positions=batch.get("positions"),
            segment_ids=batch.get("segment_ids"),
            deterministic=deterministic,
        )
        return {"lm": (logits_BxLxV, batch["targets"], batch["weights"])}


class Encoder(nn.Module):
    """Bidirectional encoder (BERT) with one head: MLM (+ NSP), classification or span.

    cfg.encoder_head picks the head (BERT section 4): `mlm` for pretraining, `classification`
    (GLUE: tanh pooler on [CLS], dropout, num_labels classifier) or `span` (SQuAD: start
    and end logits per token). Only the chosen head has parameters.
    """

    cfg: ModelConfig

    def setup(self) -> None:
        cfg = self.cfg
        self.token_embed = Embed(
            cfg.vocab_size, cfg.d_model, cfg.compute_dtype, cfg.params_dtype, _embed_stddev(cfg)
        )
        self.embedding = _Embedding(cfg, self.token_embed, with_types=True, with_norm=True)
        self.stack = Stack(cfg, cfg.num_layers)
        self.final_norm = make_norm(cfg) if cfg.pre_norm else None
        dense = lambda f, axes, dt: Dense(f, axes, cfg.use_bias, dt, cfg.params_dtype)  # noqa: E731
        head = cfg.encoder_head
        if head == "mlm":
            self.mlm_transform = dense(cfg.d_model, ("embed", "mlp"), cfg.compute_dtype)
            self.mlm_norm = make_norm(cfg)
            if not cfg.tie_embeddings:
                self.mlm_decoder = Dense(
                    cfg.vocab_size, ("embed", "vocab"), False, jnp.float32, cfg.params_dtype
                )
            self.mlm_bias = param_with_axes(
                self,
                "mlm_bias",
                nn.initializers.zeros,
                (cfg.vocab_size,),
                ("vocab",),
                cfg.params_dtype,
            )
            self.nsp_classifier = Dense(2, ("mlp", None), True, jnp.float32, cfg.params_dtype)
        if head in ("mlm", "classification"):
            self.pooler = dense(cfg.d_model, ("embed", "mlp"), cfg.compute_dtype)
        if head == "classification":
            self.classifier_dropout = nn.Dropout(cfg.dropout_rate)
            self.classifier = Dense(
                cfg.num_labels, ("mlp", None), True, jnp.float32, cfg.params_dtype
            )
        if head == "span":
            self.qa_outputs = Dense(2, ("embed", None), True, jnp.float32, cfg.params_dtype)

    def encode(
        self,
        tokens_BxL: jax.Array,
        *,
        token_type_ids: jax.Array | None = None,
        segment_ids: jax.Array | None = None,
        positions: jax.Array | None = None,
        deterministic: bool = True,
    ) -> jax.Array:
        """Returns the final hidden states x_BxLxD."""
        return _run_tower(
            self.embedding,
            self.stack,
            self.final_norm,
            tokens_BxL,
            positions_BxL=positions,
            segment_ids_BxL=segment_ids,
            token_type_ids_BxL=token_type_ids,
            deterministic=deterministic,
        )

    def mlm_logits(self, x_BxLxD: jax.Array) -> jax.Array:
        """BERT MLM head: dense + activation + norm, tied (or untied) decoder + bias; float32."""
        # The transform is not gated, and a swiglu encoder's head has always used tanh-GELU
        # (BERT's), not swiglu's SiLU gate: kept so that trained heads still match.
        act = activation_fn("gelu" if self.cfg.activation == "swiglu" else self.cfg.activation)
        h_BxLxD = self.mlm_norm(act(self.mlm_transform(x_BxLxD)))
        if self.cfg.tie_embeddings:
            logits_BxLxV = self.token_embed.attend(h_BxLxD)
        else:
            logits_BxLxV = self.mlm_decoder(h_BxLxD.astype(jnp.float32))
        logits_BxLxV = logits_BxLxV + self.mlm_bias.astype(jnp.float32)
        return constrain(logits_BxLxV, ("act_batch", "act_len", "act_vocab"))

    def _pooled(self, x_BxLxD: jax.Array) -> jax.Array:
        """BERT's pooler: tanh(dense) of the first ([CLS]) token, float32 [B, D]."""
        return jnp.tanh(self.pooler(x_BxLxD[:, 0])).astype(jnp.float32)

    def nsp_logits(self, x_BxLxD: jax.Array) -> jax.Array:
        """NSP head: tanh pooler on the first token, then a 2-way classifier; [B, 2] float32."""
        return self.nsp_classifier(self._pooled(x_BxLxD))

    def class_logits(self, x_BxLxD: jax.Array, *, deterministic: bool = True) -> jax.Array:
        """Classification head: pooler, dropout, classifier; [B, num_labels] float32."""
        pooled_BxD = self.classifier_dropout(self._pooled(x_BxLxD), deterministic=deterministic)
        return self.classifier(pooled_BxD)

    def span_logits(self, x_BxLxD: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Span head: (start_logits_BxL, end_logits_BxL) float32, one linear map per token."""
        both_BxLx2 = self.qa_outputs(x_BxLxD.astype(jnp.float32))
        return both_BxLx2[..., 0], both_BxLx2[..., 1]

    def predict(self, batch: Batch) -> dict[str, jax.Array]:
        """The head's outputs for a batch, deterministic: {'logits'} or {'start', 'end'}."""
        x_BxLxD = self._encode_batch(batch, deterministic=True)
        head = self.cfg.encoder_head
        if head == "classification":
            return {"logits": self.class_logits(x_BxLxD)}
        if head == "span":
            start_BxL, end_BxL = self.span_logits(x_BxLxD)
            return {"start": start_BxL, "end": end_BxL}
        return {"logits": self.mlm_logits(x_BxLxD)}

    def _encode_batch(self, batch: Batch, *, deterministic: bool) -> jax.Array:
        return self.encode(
            batch["inputs"],
            token_type_ids=batch.get("token_type_ids"),
            segment_ids=batch.get("segment_ids"),
            positions=batch.get("positions"),
            deterministic=deterministic,
        )

    def __call__(
        self,
        tokens_BxL: jax.Array,
        *,
        token_type_ids: jax.Array | None = None,
        segment_ids: jax.Array | None = None,
        positions: jax.Array | None = None,
        deterministic: bool = True,
    ) -> jax.Array:
        """Returns the head's logits (float32): MLM [B, L, V], classes [B, C] or span [B, L, 2]."""
        x_BxLxD = self.encode(
            tokens_BxL,
            token_type_ids=token_type_ids,
            segment_ids=segment_ids,
            positions=positions,
            deterministic=deterministic,
        )
        head = self.cfg.encoder_head
        if head == "classification":
            return self.class_logits(x_BxLxD, deterministic=deterministic)
        if head == "span":
            return jnp.stack(self.span_logits(x_BxLxD), axis=-1)
        return self.mlm_logits(x_BxLxD)

    def loss_terms(self, batch: Batch, *, deterministic: bool = True) -> LossTerms:
        """The head's terms: {'mlm'(, 'nsp')}, {'cls'} or {'start', 'end'} (see contracts.md)."""
        x_BxLxD = self._encode_batch(batch, deterministic=deterministic)
        head = self.cfg.encoder_head
        if head == "classification":
            logits_BxC = self.class_logits(x_BxLxD, deterministic=deterministic)
            return {"cls": (logits_BxC, batch["labels"], batch["label_weights"])}
        if head == "span":
            start_BxL, end_BxL = self.span_logits(x_BxLxD)
            # Padding is never an answer: its logits leave the softmax.
            pad_BxL = batch["segment_ids"] == 0
            start_BxL = jnp.where(pad_BxL, -1e9, start_BxL)
            end_BxL = jnp.where(pad_BxL, -1e9, end_BxL)
            weights_B = batch["span_weights"]
            return {
                "start": (start_BxL, batch["start_positions"], weights_B),
                "end": (end_BxL, batch["end_positions"], weights_B),
            }
        terms = {"mlm": (self.mlm_logits(x_BxLxD), batch["targets"], batch["weights"])}
        if "nsp_labels" in batch:
            labels_B = batch["nsp_labels"]
            terms["nsp"] = (
                self.nsp_logits(x_BxLxD),
                labels_B,
                jnp.ones(labels_B.shape, jnp.float32),
            )
        return terms


class EncoderDecoder(nn.Module):
    """AIAYN encoder-decoder with cross-attention and shared, scaled embeddings by config."""

    cfg: ModelConfig

    def setup(self) -> None:
        cfg = self.cfg
        embed = lambda: Embed(  # noqa: E731
            cfg.vocab_size, cfg.d_model, cfg.compute_dtype, cfg.params_dtype, _embed_stddev(cfg)
        )
        if cfg.tie_embeddings:
            # AIAYN 3.4: one matrix for encoder input, decoder input and pre-softmax projection.
            self.token_embed = embed()
            encoder_embed = decoder_embed = self.token_embed
        else:
            self.encoder_token_embed = embed()
            self.decoder_token_embed = embed()
            encoder_embed, decoder_embed = self.encoder_token_embed, self.decoder_token_embed
        self.encoder_embedding = _Embedding(cfg, encoder_embed)
        self.decoder_embedding = _Embedding(cfg, decoder_embed)
        self.encoder_stack = Stack(cfg, cfg.encoder_layers)
        self.decoder_stack = Stack(cfg, cfg.decoder_layers, cross=True, causal=True)
        self.encoder_norm = make_norm(cfg) if cfg.pre_norm else None
        self.decoder_norm = make_norm(cfg) if cfg.pre_norm else None
        self.decode_index = DecodeIndex()
        self.head = _LMHead(cfg, decoder_embed)

    def encode(
        self,
        encoder_inputs: jax.Array,
        *,
        encoder_segment_ids: jax.Array | None = None,
        encoder_positions: jax.Array | None = None,
        deterministic: bool = True,
    ) -> jax.Array:
        """Returns encoded_BxSxD; without segment ids, token id cfg.pad_id is treated as padding."""
        if encoder_segment_ids is None:
            encoder_segment_ids = (encoder_inputs != self.cfg.pad_id).astype(jnp.int32)
        return _run_tower(
            self.encoder_embedding,
            self.encoder_stack,
            self.encoder_norm,
            encoder_inputs,
            positions_BxL=encoder_positions,
            segment_ids_BxL=encoder_segment_ids,
            deterministic=deterministic,
        )

    def decode(
        self,
        encoded_BxSxD: jax.Array,
        encoder_inputs: jax.Array | None,
        decoder_inputs: jax.Array,
        *,
        encoder_segment_ids: jax.Array | None = None,
        decoder_segment_ids: jax.Array | None = None,
        decoder_positions: jax.Array | None = None,
        deterministic: bool = True,
        decode: bool = False,
    ) -> jax.Array:
        """Returns logits_BxLxV (float32); decode=True uses the self-attention KV cache.

        Cross-attention skips encoder padding: segment id 0 in encoder_segment_ids or,
        when those are None, token id cfg.pad_id in encoder_inputs (None: attend everywhere).
        """
        cfg = self.cfg
        if encoder_segment_ids is None and encoder_inputs is not None:
            encoder_segment_ids = (encoder_inputs != cfg.pad_id).astype(jnp.int32)
        cache_index = self.decode_index(decoder_inputs.shape[1]) if decode else None
        if encoder_segment_ids is None:
            cross_mask = None
        elif decoder_segment_ids is None or cache_index is not None:
            cross_mask = padding_mask(encoder_segment_ids)
        else:
            cross_mask = segment_mask(decoder_segment_ids, encoder_segment_ids)
        x_BxLxD = _run_tower(
            self.decoder_embedding,
            self.decoder_stack,
            self.decoder_norm,
            decoder_inputs,
            positions_BxL=decoder_positions,
            segment_ids_BxL=decoder_segment_ids,
            encoded_BxSxD=encoded_BxSxD,
            cross_mask=cross_mask,
            cache_index=cache_index,
            deterministic=deterministic,
            decode=decode,
        )
        return self.head(x_BxLxD)

    def __call__(
        self,
        encoder_inputs: jax.Array,
        decoder_inputs: jax.Array,
        *,
        encoder_segment_ids: jax.Array | None = None,
        decoder_segment_ids: jax.Array | None = None,
        encoder_positions: jax.Array | None = None,
        decoder_positions: jax.Array | None = None,
        deterministic: bool = True,
        decode: bool = False,
    ) -> jax.Array:
        """Encodes then decodes; returns logits_BxLxV (float32)."""
        encoded_BxSxD = self.encode(
            encoder_inputs,
            encoder_segment_ids=encoder_segment_ids,
            encoder_positions=encoder_positions,
            deterministic=deterministic,
        )
        return self.decode(
            encoded_BxSxD,
            encoder_inputs,
            decoder_inputs,
            encoder_segment_ids=encoder_segment_ids,
            decoder_segment_ids=decoder_segment_ids,
            decoder_positions=decoder_positions,
            deterministic=deterministic,
            decode=decode,
        )

    def loss_terms(self, batch: Batch, *, deterministic: bool = True) -> LossTerms:
        """{'lm': (logits_BxLxV, targets_BxL, weights_BxL)} for a seq2seq batch."""
        logits_BxLxV = self(
            batch["encoder_inputs"],
            batch["decoder_inputs"],
            encoder_segment_ids=batch.get("encoder_segment_ids"),
            decoder_segment_ids=batch.get("decoder_segment_ids"),
            encoder_positions=batch.get("encoder_positions"),
            decoder_positions=batch.get("decoder_positions"),
            deterministic=deterministic,
        )
        return {"lm": (logits_BxLxV, batch["targets"], batch["weights"])}
