"""The decode step's attention over the KV cache equals dense attention over the whole prefix."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm.models import kv_cache
from llm.models.attention import causal_mask, combine_masks, dot_product_attention, window_mask


def _qkv(rng, b, length, h, n, k):
    keys = jax.random.split(rng, 3)
    q = jax.random.normal(keys[0], (b, length, h, k))
    kk = jax.random.normal(keys[1], (b, length, n, k))
    v = jax.random.normal(keys[2], (b, length, n, k))
    return q, kk, v


@pytest.mark.parametrize("heads", [(4, 4), (4, 2), (4, 1)])
@pytest.mark.parametrize("chunk", [1, 3])
@pytest.mark.parametrize("window", [0, 2])
def test_chunks_over_the_cache_equal_dense_causal_attention(heads, chunk, window):
    b, length, k = 2, 9, 8
    h, n = heads
    q, kk, v = _qkv(jax.random.key(0), b, length, h, n, k)
    mask = causal_mask(length)
    if window:
        mask = combine_masks(mask, window_mask(length, length, window))
    want = dot_product_attention(q, kk, v, mask)
    # Feed the sequence chunk by chunk into a cache with room to spare (12 > 9 slots).
    k_shape, v_shape = kv_cache.cache_shapes(b, 12, n, k)
    # Stale values in the slots not yet written must not leak in.
    cache_k, cache_v = jnp.full(k_shape, 7.0), jnp.full(v_shape, -3.0)
    outs = []
    for start in range(0, length, chunk):
        sl = slice(start, min(start + chunk, length))
        index = jnp.int32(start)
        outs.append(kv_cache.attend(q[:, sl], cache_k, cache_v, kk[:, sl], v[:, sl], index, window))
        cache_k = kv_cache.write_keys(cache_k, kk[:, sl], index)
        cache_v = kv_cache.write_values(cache_v, v[:, sl], index)
    np.testing.assert_allclose(jnp.concatenate(outs, axis=1), want, atol=1e-5)
    # Keys are stored [B, N, K, S] and values [B, N, S, K].
    np.testing.assert_array_equal(cache_k[:, :, :, :length], jnp.transpose(kk, (0, 2, 3, 1)))
    np.testing.assert_array_equal(cache_v[:, :, :length], jnp.swapaxes(v, 1, 2))


def test_fused_projection_equals_three_einsums():
    d, h, n, k = 16, 4, 2, 8
    keys = jax.random.split(jax.random.key(1), 7)
    x = jax.random.normal(keys[0], (2, 3, d))
    wq = jax.random.normal(keys[1], (d, h, k))
    wk = jax.random.normal(keys[2], (d, n, k))
    wv = jax.random.normal(keys[3], (d, n, k))
    biases = (
        jax.random.normal(keys[4], (h, k)),
        jax.random.normal(keys[5], (n, k)),
        jax.random.normal(keys[6], (n, k)),
    )
    q, kk, v = kv_cache.fused_qkv(x, wq, wk, wv, biases)
    np.testing.assert_allclose(q, jnp.einsum("bld,dhk->blhk", x, wq) + biases[0], atol=1e-5)
    np.testing.assert_allclose(kk, jnp.einsum("bld,dnk->blnk", x, wk) + biases[1], atol=1e-5)
    np.testing.assert_allclose(v, jnp.einsum("bld,dnk->blnk", x, wv) + biases[2], atol=1e-5)
