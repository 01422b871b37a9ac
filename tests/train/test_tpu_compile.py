"""The real TPU compiler (libtpu, the [tpu] extra) on TPU topologies, from this CPU machine."""

import pathlib
import subprocess
import sys

import pytest

from llm.config import load_config
from llm.parallel import topology
from llm.train.aot import compile_train_step, parse_out_of_memory

ROOT = pathlib.Path(__file__).resolve().parents[2]
needs_libtpu = pytest.mark.skipif(
    not topology.libtpu_available(), reason="needs libtpu: pip install -e '.[tpu]' (CI does)"
)


def test_topology_names_are_checked():
    assert topology.parse_topology("v5p:4x4x4") == ("v5p", (4, 4, 4))
    assert topology.parse_topology("v5e:4x4") == ("v5e", (4, 4))
    assert topology.topology_chip("v6e:8x8").name == "tpu_v6e"
    with pytest.raises(ValueError, match="v5e topologies have 2 dimensions"):
        topology.parse_topology("v5e:2x2x2")
    with pytest.raises(ValueError, match="'v5litepod-16' is not a TPU topology.*v5p:4x4x4"):
        topology.parse_topology("v5litepod-16")


def test_missing_libtpu_names_the_install_command(monkeypatch):
    monkeypatch.setattr(topology, "libtpu_available", lambda: False)
    with pytest.raises(topology.TPUCompilerMissingError, match=r"pip install -e '\.\[tpu\]'"):
        topology.tpu_devices("v5p:2x2x1")


def test_out_of_memory_message_is_parsed():
    message = (
        "RESOURCE_EXHAUSTED: Ran out of memory on HBM, the total memory required for HLO "
        "temporaries (101.34G) exceeds available HBM (95.74G)."
    )
    need, have = parse_out_of_memory(message)
    assert need == pytest.approx(101.34 * 2**30) and have == pytest.approx(95.74 * 2**30)
    assert parse_out_of_memory("INTERNAL: something else") is None


def _tiny_gpt(*overrides):
    return load_config(
        str(ROOT / "experiments" / "gpt3.py:tiny"),
        [
            ("train.batch_size", "8"),
            ("mesh.data", "1"),
            ("mesh.fsdp", "-1"),
            ("mesh.rules", "fsdp"),
            *overrides,
        ],
    )


@needs_libtpu
def test_tiny_decoder_compiles_for_a_tpu_topology_with_estimates():
    devices = topology.tpu_devices("v5p:2x2x1")
    assert len(devices) == 4 and devices[0].platform == "tpu"
    report = compile_train_step(_tiny_gpt(), devices, estimate_time=True)
    assert report.compile_error is None
    assert report.mesh == {"data": 1, "fsdp": 4, "expert": 1, "context": 1, "tensor": 1}
    assert report.chip.name == "tpu_v5p" and report.temp_bytes > 0
    # The scanned step's XLA count covers one layer; extrapolated it matches the analytical
    # count with remat recompute (dots: attention einsums recomputed).
    assert report.xla_flops_per_device_extrapolated == pytest.approx(
        report.hardware_flops_per_device, rel=0.25
    )
    assert report.estimated_seconds > 0 and 0 < report.estimated_mfu <= 1
    text = report.format()
    assert "estimated by the TPU compiler's cost model, not measured" in text


@needs_libtpu
def test_out_of_hbm_becomes_a_report_not_a_crash():
    # 6.7B parameters with AdamW need ~80 GB of state: far over four 15.75 GiB v5e chips.
    config = load_config(
        str(ROOT / "experiments" / "gpt3.py:6.7b"),
        [("train.batch_size", "8"), ("mesh.tensor", "1"), ("mesh.rules", "fsdp")],
    )
    report = compile_train_step(config, topology.tpu_devices("v5e:2x2"))
    assert report.compile_error.startswith("RESOURCE_EXHAUSTED")
    assert report.peak_bytes > report.hbm_bytes


@needs_libtpu
def test_compile_cli_reports_a_topology_and_fails_over_budget():
    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "launch.compile", "--config=experiments/gpt3.py:tiny", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )

    ok = run("--topology=v5e:2x2", "--config.train.batch_size=8", "--estimate=false")
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "on 4 devices of kind 'TPU v5 lite' (tpu_v5e: 15.75 GiB HBM per chip)" in ok.stdout
    assert "fits: peak" in ok.stdout
    over = run(
        "--topology=v5e:2x2", "--config.train.batch_size=8", "--estimate=false", "--hbm_gib=0.001"
    )
    assert over.returncode == 1 and "exceeds the budget" in over.stderr
    bad = run("--topology=v5e:2x2x2")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error:")


@needs_libtpu
def test_step_time_estimate_survives_custom_calls_the_cost_model_cannot_price():
    # At d_model 512 the TPU compiler emits ConcatBitcast custom calls, each of which its
    # cost model prices at exactly -1 s; the raw total of this step is about -5 s.
    config = _tiny_gpt(
        ("model.d_model", "512"),
        ("model.d_ff", "2048"),
        ("model.num_heads", "8"),
        ("model.num_layers", "1"),
        ("model.scan_layers", "false"),
    )
    report = compile_train_step(config, topology.tpu_devices("v5e:2x2"), estimate_time=True)
    peak = report.chip.peak_flops
    # Positive, and no faster than the chip's peak allows for the XLA-counted FLOPs.
    assert report.estimated_seconds >= report.xla_flops_per_device / peak
    assert report.estimated_seconds < 1.0
