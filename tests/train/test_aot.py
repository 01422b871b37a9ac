"""Ahead-of-time compilation: memory agrees with the analytical count; budgets are enforced."""

import pathlib
import subprocess
import sys

import pytest

from llm.config import load_config
from llm.train.aot import GIB, budget_advice, compile_train_step

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_gpt2_124m_state_memory_matches_analytical_count():
    config = load_config(
        str(ROOT / "experiments" / "gpt2.py:124m"),
        [("train.batch_size", "8"), ("data.seq_len", "128")],
    )
    report = compile_train_step(config, estimate_time=True)
    assert report.mesh == {"data": 1, "fsdp": 8, "expert": 1, "context": 1, "tensor": 1}
    assert report.param_count == pytest.approx(124e6, rel=0.03)
    # float32 params + AdamW's two moments, split 8 ways by FSDP.
    analytical = report.param_count * 4 * 3 / 8
    assert report.state_bytes_per_device == pytest.approx(analytical, rel=0.10)
    assert report.argument_bytes == pytest.approx(analytical, rel=0.10)
    # XLA counts the scanned layer once; the depth-2 extrapolation recovers all 12 layers
    # (remat recompute included) to within 15% of the analytical hardware count.
    assert report.xla_flops_per_device < 0.5 * report.hardware_flops_per_device
    assert report.xla_flops_per_device_extrapolated == pytest.approx(
        report.hardware_flops_per_device, rel=0.15
    )
    assert report.model_flops_per_step == pytest.approx(6 * report.param_count * 8 * 128, rel=0.10)
    assert report.estimated_seconds is None  # XLA:CPU has no cost-model time
    assert budget_advice(report, 80 * GIB) is None
    advice = budget_advice(report, 0.01 * GIB)
    assert "exceeds the budget" in advice and "--config.mesh.fsdp" in advice


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["tiny_lm", "gpt2:tiny", "gpt3:tiny", "llama:tiny", "aiayn:tiny", "bert:tiny"]
)
def test_every_tiny_config_compiles(name):
    path, _, arg = name.partition(":")
    config = load_config(str(ROOT / "experiments" / f"{path}.py") + (f":{arg}" if arg else ""))
    report = compile_train_step(config)
    assert report.devices == 8 and report.peak_bytes > report.state_bytes_per_device


def test_cli_exits_nonzero_over_budget():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "launch.compile",
            "--config=experiments/tiny_lm.py:smoke",
            "--devices=4",
            "--hbm_gib=0.0001",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert (
        "mesh {'data': 4, 'fsdp': 1, 'expert': 1, 'context': 1, 'tensor': 1} on 4 devices"
        in result.stdout
    )
    assert "exceeds the budget" in result.stderr
