"""launch.convert's import writes a workdir that restores sharded, decodes and exports exactly."""

from __future__ import annotations

import json
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest
from safetensors.numpy import load_file

from llm.convert.workdir import export_workdir, import_to_workdir
from llm.data.config import default_data_config
from llm.parallel.config import default_mesh_config
from llm.train.config import default_train_config
from llm.train.restore import restore_params
from tests.convert.hf_models import save


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("llama")
    save("llama", folder)
    return folder


def test_import_restores_sharded_and_exports_exactly(llama_dir, tmp_path):
    base = ml_collections.ConfigDict()
    base.data = default_data_config()
    base.data.seq_len = 32
    base.train = default_train_config()
    base.mesh = default_mesh_config("fsdp")
    base.mesh.data, base.mesh.fsdp = 4, 2  # 8 simulated devices (tests/conftest.py)
    workdir = tmp_path / "w"
    config = import_to_workdir(llama_dir, workdir, base_config=base)
    saved = json.loads((workdir / "config.json").read_text())
    assert saved["model"]["num_kv_heads"] == 2 and saved["mesh"]["fsdp"] == 2
    assert config.data.seq_len == 32

    run = restore_params(workdir)
    kernel = run.params["stack"]["layers_0"]["mlp"]["wi"]["kernel"]
    assert isinstance(kernel, jax.Array)
    assert not kernel.sharding.is_fully_replicated  # restored in shards on the fsdp axis

    out = export_workdir(workdir, tmp_path / "hf")
    original = load_file(str(llama_dir / "model.safetensors"))
    exported = load_file(str(out / "model.safetensors"))
    assert exported.keys() == original.keys()
    for name, value in original.items():
        np.testing.assert_array_equal(exported[name], value, err_msg=name)
    # Token ids and other extras of the imported config.json survive the round trip.
    hf = json.loads((out / "config.json").read_text())
    assert hf["bos_token_id"] == 1 and hf["architectures"] == ["LlamaForCausalLM"]


def test_launch_convert_and_decode(llama_dir, tmp_path):
    workdir = tmp_path / "w"
    env_run = dict(capture_output=True, text=True, timeout=300, check=False)
    out = subprocess.run(
        [sys.executable, "-m", "launch.convert", f"--from_hf={llama_dir}", f"--workdir={workdir}"],
        **env_run,
    )
    assert out.returncode == 0, out.stderr
    assert (workdir / "checkpoints" / "0").is_dir()
    again = subprocess.run(
        [sys.executable, "-m", "launch.convert", f"--from_hf={llama_dir}", f"--workdir={workdir}"],
        **env_run,
    )
    assert again.returncode == 2 and "not empty" in again.stderr
    decoded = subprocess.run(
        [sys.executable, "-m", "launch.decode", f"--workdir={workdir}", "--max_decode_len=4"],
        input="hi\n",
        **env_run,
    )
    assert decoded.returncode == 0, decoded.stderr
    assert len(decoded.stdout.splitlines()) == 1
    missing = subprocess.run(
        [sys.executable, "-m", "launch.convert", f"--from_hf={tmp_path}", "--workdir=/tmp/x"],
        **env_run,
    )
    assert missing.returncode == 2 and "config.json not found" in missing.stderr
