"""Self-attention over the KV cache: the decode step's layout, projection and kernel.

The cache stores keys transposed, [B, N, K, S], and values heads-major,
[B, N, S, K]. Both attention contractions then have (batch, kv head) as
leading batch axes and a right operand laid out [contracted, kept] (K then S
for q k^T, S then K for p v): the layout XLA:CPU's batched matmuls take
without a copy (each other layout was measured to copy). The
[B, S, N, K] layout of a training step made XLA transpose the whole cache of
every layer at every decode step (a quarter of a batch-8 step on CPU,
docs/benchmarks.md).

While decoding, the query, key and value projections of self-attention run
as one matmul over a concatenated [D, N, G + 2, K] weight: the concatenation
is loop-invariant, so XLA hoists it out of the decode loop, and one large
matrix-vector product streams the weights at close to memory bandwidth where
three small ones do not.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Finite, so that a fully masked row gives a uniform softmax, not NaN (as in attention.py).
_MASK_VALUE = -0.7 * float(jnp.finfo(jnp.float32).max)


def cache_shapes(
    batch: int, length: int, kv_heads: int, head_size: int
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Shapes of the cached keys [B, N, K, S] and values [B, N, S, K]."""
    return (batch, kv_heads, head_size, length), (batch, kv_heads, length, head_size)


def fused_qkv(
    x_BxLxD: jax.Array,
    wq_DxHxK: jax.Array,
    wk_DxNxK: jax.Array,
    wv_DxNxK: jax.Array,
    biases: tuple[jax.Array, jax.Array, jax.Array] | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """q [B, L, H, K], k and v [B, L, N, K] from one matmul over the concatenated weights.

    The weights are grouped per kv head ([D, N, G + 2, K]: its G query heads, then
    its key, then its value), so a kv-head sharding of the weights carries over.
    Query head n * G + g is kv head n's g-th query head, as everywhere in attention.
    """
    d, h, k = wq_DxHxK.shape
    n = wk_DxNxK.shape[1]
    g = h // n
    w_DxNxJxK = jnp.concatenate(
        [wq_DxHxK.reshape(d, n, g, k), wk_DxNxK[:, :, None], wv_DxNxK[:, :, None]], axis=2
    )
    y_BxLxNxJxK = jnp.einsum("bld,dnjk->blnjk", x_BxLxD, w_DxNxJxK)
    if biases is not None:
        bq_HxK, bk_NxK, bv_NxK = biases
        b_NxJxK = jnp.concatenate(
            [bq_HxK.reshape(n, g, k), bk_NxK[:, None], bv_NxK[:, None]], axis=1
        )
        y_BxLxNxJxK = y_BxLxNxJxK + b_NxJxK
    b, length = x_BxLxD.shape[:2]
    q_BxLxHxK = y_BxLxNxJxK[:, :, :, :g].reshape(b, length, h, k)
    return q_BxLxHxK, y_BxLxNxJxK[:, :, :, g], y_BxLxNxJxK[:, :, :, g + 1]


def write_keys(cache_BxNxKxS: jax.Array, k_BxLxNxK: jax.Array, index: jax.Array) -> jax.Array:
    """The key cache with L new positions written from `index` on."""
    new_BxNxKxL = jnp.transpose(k_BxLxNxK, (0, 2, 3, 1)).astype(cache_BxNxKxS.dtype)
    return jax.lax.dynamic_update_slice(cache_BxNxKxS, new_BxNxKxL, (0, 0, 0, index))


def write_values(cache_BxNxSxK: jax.Array, v_BxLxNxK: jax.Array, index: jax.Array) -> jax.Array:
    """The value cache with L new positions written from `index` on."""
    new_BxNxLxK = jnp.swapaxes(v_BxLxNxK, 1, 2).astype(cache_BxNxSxK.dtype)
    return jax.lax.dynamic_update_slice(cache_BxNxSxK, new_BxNxLxK, (0, 0, index, 0))


def attend(
    q_BxQxHxK: jax.Array,
    cache_k_BxNxKxS: jax.Array,
    cache_v_BxNxSxK: jax.Array,
    k_BxQxNxK: jax.Array,
    v_BxQxNxK: jax.Array,
    index: jax.Array,
    window: int = 0,
) -> jax.Array:
    """softmax(q k^T / sqrt(K)) v of Q new tokens at positions index.. over the cache and themselves.

    The cache holds positions < index; the new keys and values are attended to
    from their own arrays (causally within the chunk), so that the cache is
    only read here and written afterwards, in place. Attending to a cache that
    already holds the new keys made XLA fuse a copy of the write into each of
    its readers: two copies of every cache tensor per step. window > 0 hides
    keys more than `window` positions before a query. Returns [B, Q, H, K];
    the softmax runs in float32, as in attention.py.
    """
    b, q_len, h, k = q_BxQxHxK.shape
    n, s_len = cache_k_BxNxKxS.shape[1], cache_k_BxNxKxS.shape[3]
    g = h // n
    q_BxNxGxQxK = jnp.moveaxis(q_BxQxHxK.reshape(b, q_len, n, g, k), 1, 3)
    q_BxNxGxQxK = q_BxNxGxQxK * jnp.asarray(k**-0.5, q_BxQxHxK.dtype)
    cached_BxNxGxQxS = jnp.einsum(
        "bngqk,bnks->bngqs", q_BxNxGxQxK, cache_k_BxNxKxS, preferred_element_type=jnp.float32
    )
    new_BxNxGxQxQ = jnp.einsum(
        "bngqk,blnk->bngql", q_BxNxGxQxK, k_BxQxNxK, preferred_element_type=jnp.float32
    )
    # Query i sits at position index + i; cached key j at j, new key l at index + l.
    q_Qx1 = jnp.arange(q_len)[:, None]
    behind_QxS = index + q_Qx1 - jnp.arange(s_len)[None, :]
    behind_QxQ = q_Qx1 - jnp.arange(q_len)[None, :]
    cached_visible_QxS = jnp.arange(s_len)[None, :] < index
    new_visible_QxQ = behind_QxQ >= 0
    if window:
        cached_visible_QxS &= behind_QxS <= window
        new_visible_QxQ &= behind_QxQ <= window
    logits_BxNxGxQxT = jnp.concatenate(
        [
            jnp.where(cached_visible_QxS, cached_BxNxGxQxS, _MASK_VALUE),
            jnp.where(new_visible_QxQ, new_BxNxGxQxQ, _MASK_VALUE),
        ],
        axis=-1,
    )
    probs_BxNxGxQxT = jax.nn.softmax(logits_BxNxGxQxT, axis=-1).astype(cache_v_BxNxSxK.dtype)
    out_BxNxGxQxK = jnp.einsum(
        "bngqs,bnsk->bngqk", probs_BxNxGxQxT[..., :s_len], cache_v_BxNxSxK
    ) + jnp.einsum("bngql,blnk->bngqk", probs_BxNxGxQxT[..., s_len:], v_BxQxNxK)
    return jnp.moveaxis(out_BxNxGxQxK, 3, 1).reshape(b, q_len, h, k)
