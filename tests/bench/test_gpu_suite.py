"""launch.bench --suite=gpu: datasheet peaks by device kind, CPU refusal, rows per attention kernel."""

import pytest

from llm import flops
from llm.bench import suites
from llm.models import ModelConfig


@pytest.mark.parametrize(
    "kind, peak",
    [
        ("NVIDIA H200", 989e12),
        ("NVIDIA H100 80GB HBM3", 989e12),
        ("NVIDIA A100-SXM4-80GB", 312e12),
        ("TPU v4", 275e12),
        ("TPU v5 lite", 197e12),
        ("TPU v5p", 459e12),
        ("TPU v6 lite", 918e12),
        ("cpu", None),
    ],
)
def test_datasheet_peak_by_device_kind(kind, peak):
    assert flops.peak_flops_of(kind) == peak


def test_gpu_models_are_the_issue_sizes():
    models = suites.gpu_models()
    counts = {name: cfg for name, (cfg, _) in models.items()}
    gpt2, xl = counts["gpt2 124M"], counts["gpt3-xl 1.3B"]
    assert (gpt2.d_model, gpt2.num_layers, gpt2.dtype) == (768, 12, "bfloat16")
    assert (xl.d_model, xl.num_layers, xl.dtype) == (2048, 24, "bfloat16")
    assert all(cfg.vocab_size % 128 == 0 for cfg in counts.values())


def test_cudnn_needs_a_gpu():
    with pytest.raises(RuntimeError, match="needs an NVIDIA GPU.*cpu devices"):
        suites.run_gpu(1)


def test_rows_per_attention_kernel_on_cpu():
    tiny = ModelConfig(vocab_size=128, d_model=32, num_heads=4, d_ff=64, num_layers=1, max_len=32)
    models = {"tiny": (tiny, dict(batch_size=2, seq_len=32))}
    rows = suites.run_gpu(1, models=models, impls=("einsum", "xla"), peak=1e10)
    assert [r["attention"] for r in rows] == ["einsum", "xla"]
    per_token = flops.train_flops_per_token(tiny, 32)
    for r in rows:
        assert r["flops_per_token"] == per_token
        assert r["tokens_per_sec"] > 0
        assert r["mfu"] == pytest.approx(r["tokens_per_sec"] * per_token / 1e10)


def test_a_failing_configuration_is_a_row_not_a_crash(monkeypatch):
    tiny = ModelConfig(vocab_size=128, d_model=32, num_heads=4, d_ff=64, num_layers=1, max_len=32)

    def out_of_memory(name, cfg, **kwargs):
        raise RuntimeError(f"RESOURCE_EXHAUSTED: out of memory while running {name}")

    monkeypatch.setattr(suites, "benchmark_training", out_of_memory)
    models = {
        "a": (tiny, dict(batch_size=2, seq_len=32)),
        "b": (tiny, dict(batch_size=2, seq_len=32)),
    }
    rows = suites.run_gpu(1, models=models, impls=("xla",), peak=1e10)
    assert [r["name"] for r in rows] == ["a xla", "b xla"]
    assert all("RESOURCE_EXHAUSTED" in r["error"] for r in rows)
