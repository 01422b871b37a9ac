"""`python -m launch.bench --suite=hf_decode`: this project's decoding next to Hugging Face `generate`.

Both sides decode the same weights: a randomly initialised model of ours is
exported with llm.convert.save_hf and loaded by transformers. Each side gets
the same random prompts (exactly `prompt_len` tokens), writes exactly
`new_tokens` tokens (EOS never stops a row), greedy or beam search, in
float32 on the CPU, in this one process. Time: the median of `repeats` calls
after the first; the first call's time is reported too (for us: trace,
compile and one run). Throughput counts new tokens of the returned sequences
(a beam of 4 yields one sequence per example).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from llm import models
from llm.decode.adapters import decoder_tokens_to_logits, init_cache
from llm.decode.beam_search import beam_search
from llm.decode.compile import jit_decode
from llm.decode.sampling import greedy

# Issue #19's shapes: 6 layers, 6 heads, d_model 384, vocab 8192.
GPT2_STYLE = models.ModelConfig(
    family="decoder",
    vocab_size=8192,
    d_model=384,
    num_heads=6,
    d_ff=1536,
    num_layers=6,
    max_len=256,
)
LLAMA_STYLE = GPT2_STYLE.replace(
    num_kv_heads=2,
    d_ff=1024,
    position="rotary",
    norm="rmsnorm",
    activation="swiglu",
    use_bias=False,
    tie_embeddings=False,
)
MODELS = {"gpt2-style": GPT2_STYLE, "llama-style (GQA 6:2)": LLAMA_STYLE}
# The goals: new tokens/s over HF's at these batch sizes (greedy).
GOALS = {1: 5.0, 8: 2.0}

# Never generated (ids are >= 0): every row writes all its tokens.
_NO_EOS = -1


def _median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """(first call seconds, median of `repeats` later calls) of fn()."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def _ours(model, params, prompt_BxP: np.ndarray, new_tokens: int, beams: int):
    """A call that decodes prompt_BxP with our loop (prefill of the whole prompt) and blocks."""
    batch, prompt_len = prompt_BxP.shape

    def run(params, prompt_BxP):
        step = decoder_tokens_to_logits(model, params)
        cache = init_cache(model, jnp.zeros((batch, prompt_len + new_tokens - 1), jnp.int32))
        if beams > 1:
            tokens_BxKxT, _ = beam_search(
                step,
                cache,
                prompt_BxP,
                beam_size=beams,
                max_decode_len=new_tokens,
                eos_id=_NO_EOS,
                prefill_len=prompt_len,
            )
            return tokens_BxKxT[:, 0]
        return greedy(
            step,
            cache,
            prompt_BxP,
            max_decode_len=new_tokens,
            eos_id=_NO_EOS,
            prefill_len=prompt_len,
        )

    jitted = jit_decode(run)
    prompt = jnp.asarray(prompt_BxP)
    return lambda: np.asarray(jax.block_until_ready(jitted(params, prompt)))


def _hf(hf_model, prompt_BxP: np.ndarray, new_tokens: int, beams: int):
    """A call that decodes prompt_BxP with transformers' generate."""
    import torch

    ids = torch.as_tensor(prompt_BxP, dtype=torch.long)
    kwargs = dict(
        attention_mask=torch.ones_like(ids),
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        num_beams=beams,
        pad_token_id=0,
        eos_token_id=None,
    )

    def call():
        with torch.inference_mode():
            return hf_model.generate(ids, **kwargs).numpy()

    return call


def _load_hf(cfg: models.ModelConfig, params: Any):
    """transformers' model of the same weights (float32, eval mode)."""
    import transformers

    from llm.convert.api import save_hf

    with tempfile.TemporaryDirectory() as folder:
        save_hf(cfg, jax.device_get(params), folder)
        hf_model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype="float32")
    return hf_model.eval()


def hf_decode_benchmark(
    configs: dict[str, models.ModelConfig] | None = None,
    *,
    batch_sizes: Sequence[int] = (1, 8),
    prompt_len: int = 32,
    new_tokens: int = 128,
    beam_size: int = 4,
    repeats: int = 5,
    beam_repeats: int = 3,
) -> list[dict[str, Any]]:
    """Rows of new tokens/s, ours and HF's, per model, batch and search (greedy, beam).

    Row keys: model, batch, search, hf_tok_s, ours_tok_s, speedup (ours / HF),
    hf_first_s, ours_first_s (first call: for us trace + compile + run), goal
    (greedy rows at the issue's batch sizes), same_tokens (every returned
    sequence identical to HF's).
    """
    configs = MODELS if configs is None else configs
    rows: list[dict[str, Any]] = []
    for name, cfg in configs.items():
        model = models.build_model(cfg)
        params = jax.jit(model.init)(jax.random.key(0), jnp.ones((1, 8), jnp.int32))["params"]
        hf_model = _load_hf(cfg, params)
        rng = np.random.default_rng(0)
        for batch in batch_sizes:
            prompt_BxP = rng.integers(1, cfg.vocab_size, (batch, prompt_len), dtype=np.int32)
            for beams in (1, beam_size):
                n = repeats if beams == 1 else beam_repeats
                ours = _ours(model, params, prompt_BxP, new_tokens, beams)
                hf = _hf(hf_model, prompt_BxP, new_tokens, beams)
                ours_first, ours_s = _median_time(ours, n)
                hf_first, hf_s = _median_time(hf, n)
                tokens = batch * new_tokens
                row = {
                    "model": name,
                    "batch": batch,
                    "search": "greedy" if beams == 1 else f"beam{beams}",
                    "hf_tok_s": tokens / hf_s,
                    "ours_tok_s": tokens / ours_s,
                    "speedup": hf_s / ours_s,
                    "hf_first_s": hf_first,
                    "ours_first_s": ours_first,
                    "goal": GOALS.get(batch) if beams == 1 else None,
                    "same_tokens": bool(np.array_equal(ours(), hf())),
                }
                rows.append(row)
    return rows
