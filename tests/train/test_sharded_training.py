"""The same steps on different meshes give the same losses; shardings follow the rules."""

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec

from llm.train.loop import Trainer
from llm.train.metrics import read_metrics
from tests.train.tiny import tiny_config

MESHES = [(8, 1, 1), (2, 2, 2), (1, 2, 4)]


def _losses(data_dir, workdir, mesh_shape, devices=None):
    config = tiny_config(data_dir, steps=5, checkpoint_every=100)
    config.unlock()
    config.mesh.data, config.mesh.fsdp, config.mesh.tensor = mesh_shape
    config.mesh.rules = "fsdp_tp"
    config.lock()
    trainer = Trainer(config, workdir, devices=devices)
    try:
        state, _ = trainer.run()
    finally:
        trainer.close()
    return [row["loss"] for row in read_metrics(workdir) if "loss" in row], state


def test_meshes_and_one_device_agree(data_dir, tmp_path):
    reference, _ = _losses(data_dir, tmp_path / "one", (1, 1, 1), devices=jax.devices()[:1])
    assert len(reference) == 5 and reference[-1] < reference[0]
    for shape in MESHES:
        losses, state = _losses(data_dir, tmp_path / "x".join(map(str, shape)), shape)
        np.testing.assert_allclose(losses, reference, rtol=1e-4, err_msg=f"mesh {shape}")
        if shape == (1, 2, 4):
            _assert_shardings_follow_rules(state)


def _assert_shardings_follow_rules(state):
    specs = {
        jax.tree_util.keystr(path): leaf.sharding.spec
        for path, leaf in jax.tree_util.tree_leaves_with_path(state.params)
    }
    # fsdp_tp: embed -> fsdp; vocab, mlp, heads -> tensor; norms and head dims replicated.
    expected = {
        "['token_embed']['embedding']": PartitionSpec("tensor", "fsdp"),
        "['stack']['layers_0']['mlp']['wi']['kernel']": PartitionSpec("fsdp", "tensor"),
        "['stack']['layers_0']['mlp']['wo']['kernel']": PartitionSpec("tensor", "fsdp"),
        "['stack']['layers_1']['self_attn']['query']": PartitionSpec("fsdp", "tensor", None),
        "['stack']['layers_1']['self_attn']['out']": PartitionSpec("tensor", None, "fsdp"),
        "['final_norm']['scale']": PartitionSpec(None),
    }
    for name, spec in expected.items():
        assert specs[name] == spec, (name, specs[name])


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("mesh.data", 3, "has 3 devices but 8 are available"),
        ("train.batch_size", 6, "batch_size=6 is not divisible by the data-parallel size 8"),
        ("model.d_ff", 130, "not divisible by mesh axes"),
    ],
)
def test_bad_configs_fail_before_compiling(data_dir, tmp_path, field, value, message):
    config = tiny_config(data_dir)
    config.unlock()
    if field == "model.d_ff":
        config.mesh.data, config.mesh.fsdp, config.mesh.tensor = 2, 1, 4
        config.mesh.rules = "fsdp_tp"
    group, key = field.split(".")
    config[group][key] = value
    config.lock()
    with pytest.raises(ValueError, match=message):
        Trainer(config, tmp_path)
