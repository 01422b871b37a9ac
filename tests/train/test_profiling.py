"""Profiler traces of chosen steps and MFU in the training log."""

import pytest

from llm.flops import train_flops_per_token
from llm.models.config import ModelConfig
from llm.train.loop import train_and_evaluate
from llm.train.metrics import read_metrics
from llm.train.profiling import StepProfiler, resolve_peak_flops
from tests.train.tiny import tiny_config


def test_profile_trace_and_mfu_are_written(data_dir, tmp_path):
    config = tiny_config(data_dir, steps=4, checkpoint_every=100)
    config.unlock()
    config.train.profile_steps = (2, 3)
    config.train.peak_flops = "1e12"
    config.lock()
    train_and_evaluate(config, tmp_path, devices=None)
    traces = list((tmp_path / "profile").rglob("*.xplane.pb"))
    assert traces, "no jax.profiler trace written"
    rows = [r for r in read_metrics(tmp_path) if "tokens_per_sec" in r]
    per_token = train_flops_per_token(ModelConfig.from_dict(config.model), 32)
    for row in rows:
        assert row["mfu"] == pytest.approx(row["tokens_per_sec"] * per_token / (1e12 * 8))


def test_peak_and_profile_arguments_are_checked(tmp_path):
    assert resolve_peak_flops("h100") == 989e12
    assert resolve_peak_flops("") is None
    with pytest.raises(ValueError, match="peak_flops='h1000'"):
        resolve_peak_flops("h1000")
    with pytest.raises(ValueError, match=r"profile_steps=\(3, 2\)"):
        StepProfiler(tmp_path, (3, 2))
