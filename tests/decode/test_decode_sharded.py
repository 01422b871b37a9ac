"""Decoding jitted on a mesh with the batch sharded over 8 devices equals the unsharded run."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from llm.decode import beam_search, greedy
from tests.decode.decode_toys import random_trigram_table, trigram_cache, trigram_step_fn

BOS, EOS = 1, 2


def test_sharded_batch_matches_single_device():
    table = jnp.asarray(random_trigram_table(6, seed=5))
    prompt = jnp.asarray(np.random.RandomState(0).randint(3, 6, (8, 3)).astype(np.int32))
    prompt = prompt.at[:, 0].set(BOS)

    def decode(table, cache, prompt):
        step = trigram_step_fn(table)
        out = greedy(step, cache, prompt, max_decode_len=5, eos_id=EOS)
        beams = beam_search(step, cache, prompt, beam_size=2, max_decode_len=5, eos_id=EOS)
        return out, beams

    expected = jax.jit(decode)(table, trigram_cache(8), prompt)
    mesh = jax.make_mesh((8,), ("data",), axis_types=(AxisType.Auto,))
    batch = NamedSharding(mesh, P("data"))
    with jax.set_mesh(mesh):
        cache = trigram_cache(8)
        cache["prev"] = jax.device_put(cache["prev"], batch)
        got = jax.jit(decode)(table, cache, jax.device_put(prompt, batch))
        assert got[0].sharding.num_devices == 8
    for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(np.asarray(g), np.asarray(e), rtol=1e-6)
