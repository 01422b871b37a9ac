"""The hf_decode suite times both sides on the same weights and decodes the same tokens (tiny sizes)."""

import pytest

from llm import models
from llm.bench.hf_decode import GOALS, LLAMA_STYLE, hf_decode_benchmark

pytest.importorskip("transformers")


def test_rows_compare_the_same_decoding():
    tiny = dict(vocab_size=64, d_model=32, num_heads=4, d_ff=64, num_layers=2, max_len=32)
    configs = {
        "gpt2": models.ModelConfig(family="decoder", **tiny),
        "llama": LLAMA_STYLE.replace(**tiny, num_kv_heads=2),
    }
    rows = hf_decode_benchmark(
        configs,
        batch_sizes=(1, 8),
        prompt_len=4,
        new_tokens=6,
        beam_size=2,
        repeats=1,
        beam_repeats=1,
    )
    assert [(r["model"], r["batch"], r["search"]) for r in rows] == [
        (m, b, s) for m in ("gpt2", "llama") for b in (1, 8) for s in ("greedy", "beam2")
    ]
    for r in rows:
        assert r["speedup"] == pytest.approx(r["ours_tok_s"] / r["hf_tok_s"])
        assert r["ours_first_s"] > 0 and r["hf_first_s"] > 0
        assert r["goal"] == (GOALS[r["batch"]] if r["search"] == "greedy" else None)
        # Same weights, same prompts: greedy and beam search write the same tokens as HF.
        assert r["same_tokens"], r
