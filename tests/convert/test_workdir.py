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


@pytest.mark.slow
def test_launch_train_fine_tunes_an_import_from_its_weights(llama_dir, tmp_path):
    """experiments/workdir.py:W resumes the step-0 import: step 1's loss is the import's loss."""
    import pathlib

    from llm import data as data_lib
    from llm import models
    from llm.config import load_config
    from llm.train.loop import train_and_evaluate
    from llm.train.losses import cross_entropy_sums
    from llm.train.metrics import read_metrics

    workdir = tmp_path / "w"
    import_to_workdir(llama_dir, workdir)
    root = pathlib.Path(__file__).resolve().parents[2]
    config = load_config(
        f"{root}/experiments/workdir.py:{workdir}",
        [
            ("data.data_dir", str(tmp_path / "data")),
            ("data.seq_len", "32"),
            ("train.batch_size", "8"),
            ("train.steps", "2"),
            ("train.warmup_steps", "1"),
            ("train.eval_every", "0"),
            ("train.checkpoint_every", "2"),
            ("train.log_every", "1"),
            ("train.sample_tokens", "0"),
        ],
    )
    train_and_evaluate(config, workdir)
    losses = {r["step"]: r["loss"] for r in read_metrics(workdir) if "loss" in r}
    assert sorted(losses) == [1, 2]

    # The imported weights on the trainer's first batch (the data starts afresh).
    run = restore_params(workdir, step=0)
    first = next(
        iter(
            data_lib.make_iterator(
                config.data,
                split=config.data.train_split,
                batch_size=8,
                seed=config.train.seed,
                shuffle=True,
                num_epochs=None,
            )
        )
    )
    terms = models.build_model(run.model_cfg).apply(
        {"params": run.params}, first, method="loss_terms"
    )
    logits, targets, weights = terms["lm"]
    sums = cross_entropy_sums(logits, targets, weights)
    expected = float(sums["loss_sum"] / sums["weight_sum"])
    np.testing.assert_allclose(losses[1], expected, rtol=1e-5)
