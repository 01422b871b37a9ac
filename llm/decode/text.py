"""Text in, text out: greedy or sampled continuation of a prompt with a decoder model."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from llm.decode.adapters import decoder_tokens_to_logits, init_cache
from llm.decode.sampling import sample


def generate_text(
    model: nn.Module,
    params: Any,
    tokenizer: Any,
    prompt: str,
    *,
    max_new_tokens: int,
    max_len: int,
    temperature: float = 0.0,
    seed: int = 0,
) -> str:
    """Continues `prompt` (after BOS) with up to `max_new_tokens` tokens; temperature 0 is greedy."""
    prompt_ids = np.concatenate([[tokenizer.bos_id], tokenizer.encode(prompt)]).astype(np.int32)
    if len(prompt_ids) >= max_len:
        raise ValueError(
            f"Prompt of {len(prompt_ids)} tokens leaves no room in the model's max_len={max_len}; "
            "shorten the prompt."
        )
    new_tokens = min(max_new_tokens, max_len - len(prompt_ids) + 1)
    total = len(prompt_ids) + new_tokens - 1
    prompt_1xP = jnp.asarray(prompt_ids)[None]
    cache = init_cache(model, jnp.zeros((1, total), jnp.int32))

    @jax.jit
    def run(params, cache, prompt_1xP, rng):
        step = decoder_tokens_to_logits(model, params)
        return sample(
            step,
            cache,
            prompt_1xP,
            rng,
            max_decode_len=new_tokens,
            eos_id=tokenizer.eos_id,
            pad_id=tokenizer.pad_id,
            temperature=temperature,
        )

    tokens = np.asarray(jax.device_get(run(params, cache, prompt_1xP, jax.random.key(seed))))[0]
    return prompt + tokenizer.decode(tokens[len(prompt_ids) :])
