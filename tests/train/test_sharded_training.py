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
    config = tiny_config(data_dir, steps=5)
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
    specs = jax.tree_util.tree_map_with_path(
        lambda path, x: (jax.tree_util.keystr(path), x.sharding.spec), state.params
    )
    flat = dict(jax.tree_util.tree_leaves(specs, is_leaf=lambda x: isinstance(x, tuple)))
    # fsdp_tp: embed -> fsdp, mlp/heads/vocab -> tensor; norms replicated.
    embedding = [spec for name, spec in flat.items() if "embed" in name.lower() and len(spec) == 2]
    assert embedding and all(spec == PartitionSpec("tensor", "fsdp") for spec in embedding)
    mlp_in = [spec for name, spec in flat.items() if "mlp" in name.lower() and "wi" in name.lower()]
    assert all("tensor" in spec and "fsdp" in spec for spec in mlp_in)
    assert any(spec for spec in flat.values() if spec == PartitionSpec(None) or spec == PartitionSpec())


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
