"""decode_benchmark runs and reports every case (tiny sizes; the real numbers come from launch.bench)."""

from llm import models
from llm.bench.decoding import decode_benchmark


def test_decode_benchmark_rows():
    cfg = models.ModelConfig(
        family="decoder", vocab_size=64, d_model=32, num_heads=2, d_ff=64, num_layers=1, max_len=16
    )
    rows = decode_benchmark(cfg, batch_sizes=(1, 2), new_tokens=8, beam_size=2, repeats=1)
    assert [(r["batch"], r["method"], r["search"]) for r in rows] == [
        (1, "cache", "greedy"),
        (1, "recompute", "greedy"),
        (1, "cache", "beam2"),
        (2, "cache", "greedy"),
        (2, "recompute", "greedy"),
        (2, "cache", "beam2"),
    ]
    assert all(r["new_tokens_per_s"] > 0 for r in rows)
    assert "cache_speedup" in rows[0] and "beam_slowdown" in rows[2]
    # The KV cache decodes exactly the tokens that recomputing the whole prefix does.
    assert rows[0]["same_tokens_as_recompute"] is True
    assert rows[3]["same_tokens_as_recompute"] is True
