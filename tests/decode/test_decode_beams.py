"""Beam layout helpers: scalar cache leaves are never gathered; batch axis is configurable."""

import jax.numpy as jnp
import numpy as np
import pytest

from llm.decode import average_params, gather_beams, repeat_for_beams


def test_repeat_and_gather_leave_scalars_alone():
    cache = {"k": jnp.arange(2 * 3).reshape(2, 3), "cache_index": jnp.int32(5)}
    rep = repeat_for_beams(cache, beam_size=2, batch_size=2)
    np.testing.assert_array_equal(rep["k"], [[0, 1, 2], [0, 1, 2], [3, 4, 5], [3, 4, 5]])
    assert rep["cache_index"].shape == () and int(rep["cache_index"]) == 5
    marked = {"k": jnp.arange(4)[:, None] * 10, "cache_index": jnp.int32(5)}
    out = gather_beams(marked, jnp.array([[1, 1], [1, 0]]))
    np.testing.assert_array_equal(out["k"][:, 0], [10, 10, 30, 20])
    assert int(out["cache_index"]) == 5


def test_gather_along_scanned_layer_axis():
    # nn.scan over layers puts the layer axis first: [layers, B*K, ...], index [layers].
    cache = {
        "k": jnp.arange(3)[:, None] * 100 + jnp.arange(4)[None, :],
        "cache_index": jnp.zeros(3, jnp.int32),
    }
    out = gather_beams(cache, jnp.array([[0, 0], [1, 0]]), batch_axis=1)
    np.testing.assert_array_equal(out["k"][0], [0, 0, 3, 2])
    np.testing.assert_array_equal(out["k"][2], [200, 200, 203, 202])
    assert out["cache_index"].shape == (3,)


def test_average_params_is_elementwise_mean_and_keeps_dtype():
    trees = [
        {"w": jnp.full((2,), v, jnp.float32), "b": jnp.full((), v, jnp.bfloat16)}
        for v in (1.0, 2.0, 6.0)
    ]
    avg = average_params(trees)
    np.testing.assert_allclose(avg["w"], [3.0, 3.0])
    assert avg["b"].dtype == jnp.bfloat16 and float(avg["b"]) == 3.0
    np.testing.assert_allclose(average_params(trees[:1])["w"], [1.0, 1.0])


def test_average_params_rejects_mismatched_trees():
    with pytest.raises(ValueError, match="structure"):
        average_params([{"w": jnp.zeros(2)}, {"v": jnp.zeros(2)}])
    with pytest.raises(ValueError, match="at least one"):
        average_params([])
