"""Multi-head attention (MHA/GQA/MQA) with masks and a KV cache for decoding."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from llm.models import context_parallel, kv_cache, mup
from llm.models.config import ModelConfig
from llm.models.layers import constrain, kernel_init, param_with_axes
from llm.models.positions import apply_rotary, rope_frequencies
from llm.models.splash import PALLAS_IMPLS, pallas_attention

# Finite, so that a fully masked row (a padding query) gives a uniform softmax, not NaN.
MASK_VALUE = -0.7 * float(jnp.finfo(jnp.float32).max)


def causal_mask(q_len: int, kv_len: int | None = None) -> jax.Array:
    """Bool [1, 1, Q, K]: query i sees keys j <= i."""
    kv_len = q_len if kv_len is None else kv_len
    return (jnp.arange(kv_len)[None, :] <= jnp.arange(q_len)[:, None])[None, None]


def window_mask(q_len: int, kv_len: int, window: int, q_offset: jax.Array | int = 0) -> jax.Array:
    """Bool [1, 1, Q, K]: query i, at position q_offset + i, sees keys j within `window` of it."""
    q_pos_Q = q_offset + jnp.arange(q_len)
    return (jnp.abs(q_pos_Q[:, None] - jnp.arange(kv_len)[None, :]) <= window)[None, None]


def segment_mask(q_segment_BxQ: jax.Array, kv_segment_BxK: jax.Array) -> jax.Array:
    """Bool [B, 1, Q, K]: tokens attend only within their segment (0 = padding)."""
    return q_segment_BxQ[:, None, :, None] == kv_segment_BxK[:, None, None, :]


def padding_mask(kv_segment_BxK: jax.Array) -> jax.Array:
    """Bool [B, 1, 1, K]: keys that are not padding (segment id != 0)."""
    return (kv_segment_BxK != 0)[:, None, None, :]


def combine_masks(*masks: jax.Array | None) -> jax.Array | None:
    """Logical AND of broadcastable bool masks; None entries are ignored."""
    out = None
    for m in masks:
        if m is not None:
            out = m if out is None else jnp.logical_and(out, m)
    return out


def dot_product_attention(
    q_BxQxHxK: jax.Array,
    k_BxSxNxK: jax.Array,
    v_BxSxNxK: jax.Array,
    mask: jax.Array | None,
    dropout: nn.Module | None = None,
    deterministic: bool = True,
    module: nn.Module | None = None,
) -> jax.Array:
    """softmax(q k^T / sqrt(K)) v with H query heads sharing N kv heads; softmax in float32.

    With `module`, the weights (before dropout) are sown as its intermediate
    'attention_weights' [B, H, Q, K]; sow stores only when 'intermediates' is mutable.
    """
    b, q_len, h, k = q_BxQxHxK.shape
    n = k_BxSxNxK.shape[2]
    g = h // n
    q_BxQxNxGxK = q_BxQxHxK.reshape(b, q_len, n, g, k) * jnp.asarray(k**-0.5, q_BxQxHxK.dtype)
    logits_BxNxGxQxS = jnp.einsum(
        "bqngk,bsnk->bngqs", q_BxQxNxGxK, k_BxSxNxK, preferred_element_type=jnp.float32
    )
    if mask is not None:
        # mask is [B|1, 1, Q|1, S]: add the group axis.
        logits_BxNxGxQxS = jnp.where(mask[:, :, None], logits_BxNxGxQxS, MASK_VALUE)
    probs_BxNxGxQxS = jax.nn.softmax(logits_BxNxGxQxS.astype(jnp.float32), axis=-1)
    if module is not None:
        # Query head n * G + g is kv head n's g-th query head, as in the reshape of q.
        probs_BxHxQxS = probs_BxNxGxQxS.reshape(b, h, q_len, -1)
        module.sow("intermediates", "attention_weights", probs_BxHxQxS)
    if dropout is not None:
        probs_BxNxGxQxS = dropout(probs_BxNxGxQxS, deterministic=deterministic)
    out_BxQxNxGxK = jnp.einsum(
        "bngqs,bsnk->bqngk", probs_BxNxGxQxS.astype(v_BxSxNxK.dtype), v_BxSxNxK
    )
    return out_BxQxNxGxK.reshape(b, q_len, h, k)


class Attention(nn.Module):
    """Self- or cross-attention with explicit einsum kernels and an optional KV cache.

    With `decode=True` the keys/values live in the 'cache' collection (keys
    [B, N, K, max length], values [B, N, max length, K], sized by the init
    call; llm/models/kv_cache.py); `cache_index` (a scalar from the caller)
    says where the current chunk goes, and a cached step of any attention_impl
    runs kv_cache.attend, whose causal mask over the cache is built there. With `causal=True` the causal
    mask of a full sequence is built here too, so that the fused kernels of
    `attention_impl='xla'/'cudnn'` get `is_causal` instead of a dense mask.

    `cfg.attention_window` > 0 limits self-attention (xkv is xq, the one array the
    layers pass) to keys within that many positions of each query, over the KV cache
    too; cross-attention relates two sequences and is never windowed.
    """

    cfg: ModelConfig
    deterministic: bool = True
    decode: bool = False
    # Causal self-attention: query i sees keys j <= i (on top of `mask`).
    causal: bool = False

    @nn.compact
    def __call__(
        self,
        xq_BxQxD: jax.Array,
        xkv_BxSxD: jax.Array,
        mask: jax.Array | None = None,
        *,
        q_positions: jax.Array | None = None,
        kv_positions: jax.Array | None = None,
        cache_index: jax.Array | None = None,
        segment_ids: jax.Array | None = None,
    ) -> jax.Array:
        """Attends queries from xq to keys/values from xkv; returns [B, Q, D].

        `segment_ids` [B, L] (self-attention; 0 = padding) are the ids `mask` was built
        from, for kernels that take ids instead of a dense mask.
        """
        cfg = self.cfg
        d, h, n, k = cfg.d_model, cfg.num_heads, cfg.kv_heads, cfg.head_size
        dtype, pdtype = cfg.compute_dtype, cfg.params_dtype
        proj_init = kernel_init(in_axis=0, out_axis=(1, 2))
        wq_DxHxK = param_with_axes(
            self, "query", proj_init, (d, h, k), ("embed", "heads", "kv"), pdtype
        )
        wk_DxNxK = param_with_axes(
            self, "key", proj_init, (d, n, k), ("embed", "kv_heads", "kv"), pdtype
        )
        wv_DxNxK = param_with_axes(
            self, "value", proj_init, (d, n, k), ("embed", "kv_heads", "kv"), pdtype
        )
        wo_HxKxD = param_with_axes(
            self,
            "out",
            kernel_init(in_axis=(0, 1), out_axis=2),
            (h, k, d),
            ("heads", "kv", "embed"),
            pdtype,
        )
        xq, xkv = xq_BxQxD.astype(dtype), xkv_BxSxD.astype(dtype)
        self_attention = xkv_BxSxD is xq_BxQxD
        biases = None
        if cfg.use_bias:
            zeros = nn.initializers.zeros
            biases = tuple(
                param_with_axes(self, name, zeros, shape, axes, pdtype).astype(dtype)
                for name, shape, axes in (
                    ("query_bias", (h, k), ("heads", "kv")),
                    ("key_bias", (n, k), ("kv_heads", "kv")),
                    ("value_bias", (n, k), ("kv_heads", "kv")),
                )
            )
        if self.decode and self_attention:
            # One matmul for q, k and v (kv_cache.py says why).
            q_BxQxHxK, k_BxSxNxK, v_BxSxNxK = kv_cache.fused_qkv(
                xq, wq_DxHxK.astype(dtype), wk_DxNxK.astype(dtype), wv_DxNxK.astype(dtype), biases
            )
        else:
            q_BxQxHxK = jnp.einsum("bqd,dhk->bqhk", xq, wq_DxHxK.astype(dtype))
            k_BxSxNxK = jnp.einsum("bsd,dnk->bsnk", xkv, wk_DxNxK.astype(dtype))
            v_BxSxNxK = jnp.einsum("bsd,dnk->bsnk", xkv, wv_DxNxK.astype(dtype))
            if biases is not None:
                q_BxQxHxK += biases[0]
                k_BxSxNxK += biases[1]
                v_BxSxNxK += biases[2]
        if q_positions is not None:
            q_BxQxHxK = apply_rotary(q_BxQxHxK, q_positions, *rope_frequencies(cfg))
        if kv_positions is not None:
            k_BxSxNxK = apply_rotary(k_BxSxNxK, kv_positions, *rope_frequencies(cfg))
        if mup.enabled(cfg):
            # Every kernel below scales by 1/sqrt(head_size); muP wants 1/head_size.
            q_BxQxHxK = q_BxQxHxK * jnp.asarray(mup.query_multiplier(cfg), q_BxQxHxK.dtype)
        q_BxQxHxK = constrain(q_BxQxHxK, ("act_batch", "act_len", "act_heads", "act_kv"))

        causal = self.causal
        # A sequence split over the context mesh axis: ring / all-gather attention.
        context = context_parallel.uses_context_attention(
            cfg, self_attention=self_attention, decode=self.decode
        )
        window = cfg.attention_window if self_attention else 0
        cached = self.decode and cache_index is not None
        # Pallas kernels (splash, pallas_gpu) take whole-sequence self-attention with its
        # segment ids; the cached decode step, cross-attention and a dense mask given
        # without its ids run on the xla path.
        pallas = (
            cfg.attention_impl in PALLAS_IMPLS
            and self_attention
            and not cached
            and (mask is None or segment_ids is not None)
        )
        local_window = None  # (left, right) for jax.nn.dot_product_attention
        if window and not cached:
            if causal and cfg.attention_impl != "einsum":
                # The fused kernels' sliding window (cuDNN has only a causal one).
                local_window = (window, 0)
            else:
                q_len, s_len = q_BxQxHxK.shape[1], k_BxSxNxK.shape[1]
                mask = combine_masks(mask, window_mask(q_len, s_len, window))
        if self.decode:
            # Keys [B, N, K, S], values [B, N, S, K] (kv_cache.py says why).
            k_shape, v_shape = kv_cache.cache_shapes(*k_BxSxNxK.shape[:2], n, k)
            cached_k = self.variable("cache", "cached_key", jnp.zeros, k_shape, k_BxSxNxK.dtype)
            cached_v = self.variable("cache", "cached_value", jnp.zeros, v_shape, v_BxSxNxK.dtype)
            if cache_index is not None:
                if mask is not None:
                    raise ValueError(
                        "a cached decode step takes no attention mask: the KV cache's own "
                        "causal mask applies (decode packed or padded rows without one)"
                    )
                out_BxQxHxK = kv_cache.attend(
                    q_BxQxHxK,
                    cached_k.value,
                    cached_v.value,
                    k_BxSxNxK,
                    v_BxSxNxK,
                    cache_index,
                    window,
                )
                cached_k.value = kv_cache.write_keys(cached_k.value, k_BxSxNxK, cache_index)
                cached_v.value = kv_cache.write_values(cached_v.value, v_BxSxNxK, cache_index)
                return self._project_out(out_BxQxHxK, wo_HxKxD)

        if context:
            out_BxQxHxK = context_parallel.self_attention(
                cfg, q_BxQxHxK, k_BxSxNxK, v_BxSxNxK, segment_ids, causal=self.causal
            )
        elif pallas:
            out_BxQxHxK = pallas_attention(
                cfg, q_BxQxHxK, k_BxSxNxK, v_BxSxNxK, segment_ids, causal=causal, window=window
            )
        elif cfg.attention_impl == "einsum":
            if causal:
                mask = combine_masks(causal_mask(q_BxQxHxK.shape[1], k_BxSxNxK.shape[1]), mask)
            dropout = (
                nn.Dropout(cfg.attention_dropout_rate) if cfg.attention_dropout_rate > 0 else None
            )
            out_BxQxHxK = dot_product_attention(
                q_BxQxHxK, k_BxSxNxK, v_BxSxNxK, mask, dropout, self.deterministic, self
            )
        else:
            out_BxQxHxK = jax.nn.dot_product_attention(
                q_BxQxHxK,
                k_BxSxNxK,
                v_BxSxNxK,
                mask=mask,
                is_causal=causal,
                local_window_size=local_window,
                implementation="xla" if cfg.attention_impl in PALLAS_IMPLS else cfg.attention_impl,
            )
        return self._project_out(out_BxQxHxK, wo_HxKxD)

    def _project_out(self, out_BxQxHxK: jax.Array, wo_HxKxD: jax.Array) -> jax.Array:
        cfg = self.cfg
        out_BxQxHxK = constrain(out_BxQxHxK, ("act_batch", "act_len", "act_heads", "act_kv"))
        out_BxQxD = jnp.einsum("bqhk,hkd->bqd", out_BxQxHxK, wo_HxKxD.astype(cfg.compute_dtype))
        if cfg.use_bias:
            out_BxQxD += param_with_axes(
                self,
                "out_bias",
                nn.initializers.zeros,
                (cfg.d_model,),
                ("embed",),
                cfg.params_dtype,
            ).astype(cfg.compute_dtype)
        return out_BxQxD
