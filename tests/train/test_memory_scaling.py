"""Activation memory of the compiled step scales with the per-device batch, as counted.

These are the properties that would have caught issue #12 (every device holding the
whole global batch): per-device temporaries follow the per-device batch, not the global
one, and stay near the analytical count of llm/memory.py.
"""

import jax
import pytest

from llm.config import load_config
from llm.parallel import topology
from llm.train.aot import compile_train_step
from tests.train.test_aot import ROOT
from tests.train.test_tpu_compile import needs_libtpu


def _config(batch, *extra):
    overrides = [
        ("train.batch_size", str(batch)),
        ("data.seq_len", "512"),
        ("model.max_len", "512"),
        ("model.num_layers", "2"),
        ("model.d_model", "256"),
        ("model.num_heads", "4"),
        ("model.d_ff", "1024"),
        ("model.vocab_size", "4096"),
        ("data.vocab_size", "4096"),
        ("model.remat", "full"),
        ("mesh.data", "1"),
        ("mesh.fsdp", "-1"),
        ("mesh.tensor", "1"),
        ("mesh.rules", "fsdp"),
        *extra,
    ]
    return load_config(str(ROOT / "experiments" / "gpt2.py:124m"), overrides)


@pytest.fixture(scope="module")
def temps():
    """Per-device temporaries by (devices, global batch), and the reports."""
    out = {}
    for devices, batch in ((8, 8), (8, 16), (8, 32), (4, 8)):
        out[devices, batch] = compile_train_step(_config(batch), jax.devices()[:devices])
    return out


def test_temporaries_follow_the_per_device_batch(temps):
    t = {k: r.temp_bytes for k, r in temps.items()}
    # Doubling the rows per device doubles the batch-dependent part ...
    assert (t[8, 32] - t[8, 16]) / (t[8, 16] - t[8, 8]) == pytest.approx(2.0, abs=0.3)
    # ... which dominates here, so halving the per-device batch roughly halves the total.
    assert t[8, 16] / t[8, 32] == pytest.approx(0.5, abs=0.08)
    # Devices and global batch grown together: the per-device footprint stays flat (a step
    # that gathered the global batch onto every device would double here).
    assert t[8, 16] / t[4, 8] == pytest.approx(1.0, abs=0.12)


def test_temporaries_are_near_the_analytical_count(temps):
    # XLA:CPU neither fuses the softmax into the logits' consumers nor reuses buffers as
    # tightly as the TPU compiler (0.87-1.22x of the count, see the slow test below): here
    # it needs 1.7-2.6x. A step that held the global batch would need 8x at 8 devices.
    for report in temps.values():
        ratio = report.temp_bytes / report.analytic.temporaries
        assert 1.0 <= ratio <= 3.0, (report.mesh, ratio)
    slope = temps[8, 32].temp_bytes - temps[8, 16].temp_bytes
    analytic_slope = temps[8, 32].analytic.temporaries - temps[8, 16].analytic.temporaries
    # Per added row XLA:CPU keeps ~3.1x what the count says (the unfused logits).
    assert 1.0 <= slope / analytic_slope <= 3.5


@needs_libtpu
@pytest.mark.slow
def test_tpu_compiler_temporaries_match_the_analytical_count():
    # GPT-2 124M at T=1024, 4 rows per chip on v5p: the TPU compiler's temporaries lie
    # within 0.8-1.4x of the count (measured 1.02 full, 1.22 dots; GPT-3 6.7B on v5p-64
    # gave 0.87 full, 0.94 dots, 0.99 none).
    devices = topology.tpu_devices("v5p:2x2x1")
    for remat in ("full",):
        config = load_config(
            str(ROOT / "experiments" / "gpt2.py:124m"),
            [
                ("train.batch_size", "16"),
                ("model.remat", remat),
                ("mesh.rules", "fsdp"),
                ("mesh.data", "1"),
                ("mesh.fsdp", "-1"),
                ("mesh.tensor", "1"),
            ],
        )
        report = compile_train_step(config, devices)
        ratio = report.temp_bytes / report.analytic.temporaries
        assert 0.8 <= ratio <= 1.4, (remat, ratio)
