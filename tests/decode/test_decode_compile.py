"""Shape buckets bound the compiled decode loops; the loop carries no copy of the KV cache."""

import re

import jax
import jax.numpy as jnp
import pytest

from llm import models
from llm.decode.adapters import decoder_tokens_to_logits, init_cache
from llm.decode.compile import bucket, jit_decode, prefill_bucket
from llm.decode.sampling import greedy


def test_buckets():
    assert [bucket(n) for n in (1, 8, 9, 33, 1024, 1025, 3000)] == [8, 8, 16, 64, 1024, 2048, 3072]
    assert bucket(9, limit=12) == 12 and bucket(20, limit=12) == 20
    assert [prefill_bucket(n) for n in (1, 7, 8, 31, 32, 100)] == [1, 1, 8, 16, 32, 64]
    with pytest.raises(ValueError, match="length must be >= 1"):
        bucket(0)


def _while_body_ops(hlo: str) -> list[str]:
    comps, cur = {}, None
    for line in hlo.splitlines():
        m = re.match(r"^(?:ENTRY )?%(\S+) ", line)
        if m and line.rstrip().endswith("{"):
            cur = m.group(1)
            comps[cur] = []
        elif line.startswith("}"):
            cur = None
        elif cur:
            comps[cur].append(line)
    bodies = [
        re.search(r"body=%([^,\s]+)", line).group(1)
        for lines in comps.values()
        for line in lines
        if " while(" in line
    ]
    return [line for b in bodies for line in comps[b]]


@pytest.mark.parametrize("overrides", [{}, {"num_kv_heads": 1, "position": "rotary"}])
def test_the_decode_loop_updates_the_cache_in_place(overrides):
    cfg = models.ModelConfig(
        family="decoder",
        vocab_size=64,
        d_model=32,
        num_heads=4,
        d_ff=64,
        num_layers=2,
        max_len=32,
        **overrides,
    )
    model = models.build_model(cfg)
    params = model.init(jax.random.key(0), jnp.ones((1, 4), jnp.int32))["params"]

    def run(params, prompt):
        step = decoder_tokens_to_logits(model, params)
        cache = init_cache(model, jnp.zeros((2, 4 + 8 - 1), jnp.int32))
        return greedy(step, cache, prompt, max_decode_len=8, eos_id=-1, prefill_len=4)

    prompt = jnp.ones((2, 4), jnp.int32)
    hlo = jit_decode(run).lower(params, prompt).compile().as_text()
    body = _while_body_ops(hlo)
    cache_copies = [op for op in body if " copy(" in op and re.search(r"f32\[2,\d+,\d+,\d+\]", op)]
    assert body and not cache_copies, cache_copies
    # Without the option XLA copies each cache tensor per step (the reason for jit_decode).
    plain = _while_body_ops(jax.jit(run).lower(params, prompt).compile().as_text())
    assert any(" copy(" in op and re.search(r"f32\[2,\d+,\d+,\d+\]", op) for op in plain)
