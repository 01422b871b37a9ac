"""MoE training on expert-parallel meshes gives one device's losses; how tokens move."""

import re

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec

from llm.config import load_config
from llm.train.program import build_train_program

MESHES = [
    dict(data=2, fsdp=1, expert=4, tensor=1),
    dict(data=1, fsdp=2, expert=2, tensor=2),
]


def _program(dispatch, mesh, devices=None):
    pairs = [
        ("model.num_layers", "2"),
        ("model.moe_dispatch", dispatch),
        ("model.max_len", "32"),
        ("data.seq_len", "32"),
        ("train.batch_size", "8"),
        ("mesh.rules", "fsdp_tp"),
    ]
    pairs += [(f"mesh.{axis}", str(size)) for axis, size in mesh.items()]
    return build_train_program(load_config("experiments/mixtral.py:tiny", pairs), devices=devices)


def _losses(program, steps=3):
    state, losses = program.init_state(), []
    rng = np.random.default_rng(0)
    with jax.set_mesh(program.mesh):
        for _ in range(steps):
            batch = {k: np.asarray(v) for k, v in program.example_batch.items()}
            for key in ("inputs", "targets"):
                batch[key] = rng.integers(0, 320, batch[key].shape).astype(np.int32)
            batch = {k: jax.device_put(v, program.batch_sharding) for k, v in batch.items()}
            state, metrics = program.train_step(state, batch)
            losses.append(float(metrics["loss"]))
    return losses, state, metrics


@pytest.mark.slow
@pytest.mark.parametrize("dispatch", ["dropless", "capacity"])
def test_expert_parallel_meshes_give_one_devices_losses(dispatch):
    one = dict(data=1, fsdp=1, expert=1, tensor=1)
    reference, _, metrics = _losses(_program(dispatch, one, jax.devices()[:1]))
    assert metrics["moe/expert_load"].shape == (2, 8)
    dropped = float(metrics["moe/dropped_fraction"])
    assert dropped == 0.0 if dispatch == "dropless" else 0.0 < dropped < 0.5
    for mesh in MESHES:
        losses, state, _ = _losses(_program(dispatch, mesh))
        np.testing.assert_allclose(losses, reference, rtol=1e-4, err_msg=f"mesh {mesh}")
        wi = state.params["stack"]["layers_0"]["moe"]["wi"]
        # Experts over `expert`, their embed dim over fsdp, their hidden dim over tensor.
        assert wi.sharding.spec == PartitionSpec("expert", "fsdp", "tensor")
        assert wi.addressable_shards[0].data.shape == (
            8 // mesh["expert"],
            128 // mesh["fsdp"],
            192 // mesh["tensor"],
        )


def _collectives(dispatch):
    program = _program(dispatch, MESHES[0])
    text = program.lower_train_step().compile().as_text()
    return {op: len(re.findall(op + r"[-\w.]*\(", text)) for op in ("all-to-all", "reduce-scatter")}


def test_capacity_dispatch_is_an_all_to_all_and_dropless_a_gather_scatter():
    # Capacity: sharding constraints that XLA's partitioner turns into all-to-alls.
    assert _collectives("capacity")["all-to-all"] > 0
    # Dropless: shard_map all-gathers the expert group's tokens and reduce-scatters back.
    dropless = _collectives("dropless")
    assert dropless["all-to-all"] == 0 and dropless["reduce-scatter"] > 0
