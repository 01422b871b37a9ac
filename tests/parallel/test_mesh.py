"""Mesh construction, rules presets and the errors raised before compiling."""

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec

from llm.parallel import (
    batch_sharding,
    check_batch_size,
    check_divisible,
    make_mesh,
    resolve_mesh_shape,
    resolve_rules,
)
from llm.parallel.sharding import logical_to_shardings


def test_fill_axis_takes_remaining_devices():
    # (data, fsdp, expert, context, tensor); a config without `expert` or `context` (written
    # before they existed) gets 1.
    assert resolve_mesh_shape({"data": -1, "fsdp": 2, "tensor": 1}, 8) == (4, 2, 1, 1, 1)
    assert resolve_mesh_shape({"data": 1, "fsdp": -1, "tensor": 4}, 8) == (1, 2, 1, 1, 4)
    assert resolve_mesh_shape({"data": 2, "fsdp": 1, "expert": -1, "tensor": 1}, 8) == (
        2,
        1,
        4,
        1,
        1,
    )
    assert resolve_mesh_shape({"data": 2, "fsdp": 1, "context": -1, "tensor": 1}, 8) == (
        2,
        1,
        1,
        4,
        1,
    )


def test_mesh_uses_all_devices_with_named_axes():
    mesh = make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
    assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "expert": 1, "context": 1, "tensor": 2}
    assert mesh.devices.size == jax.device_count() == 8


def test_expert_axis_shards_experts_and_splits_the_batch():
    mesh = make_mesh({"data": 2, "fsdp": 1, "expert": 4, "tensor": 1})
    rules = resolve_rules("fsdp")
    specs = {"wi": PartitionSpec("expert", "embed", "mlp"), "router": PartitionSpec("embed")}
    shardings = logical_to_shardings(specs, mesh, rules)
    assert shardings["wi"].spec == PartitionSpec("expert", "fsdp", None)
    assert shardings["router"].spec == PartitionSpec("fsdp")
    # Outside the experts, the expert axis is data parallelism.
    assert batch_sharding(mesh, rules).spec == PartitionSpec(("data", "fsdp", "expert"))
    with pytest.raises(ValueError, match="data-parallel size 8"):
        check_batch_size(4, mesh, rules)


@pytest.mark.parametrize(
    "sizes, message",
    [
        ({"data": 4, "fsdp": 1, "tensor": 1}, "has 4 devices but 8 are available"),
        ({"data": 3, "fsdp": -1, "tensor": 1}, "not divisible by 3"),
        ({"data": -1, "fsdp": -1, "tensor": 1}, "Only one mesh axis may be -1"),
        ({"data": 0, "fsdp": 1, "tensor": 1}, "config.mesh.data=0"),
    ],
)
def test_bad_mesh_sizes_name_the_value(sizes, message):
    with pytest.raises(ValueError, match=message):
        make_mesh(sizes)


def test_rules_presets_and_unknown_name():
    assert ("embed", "fsdp") in resolve_rules("fsdp")
    assert ("heads", "tensor") in resolve_rules("fsdp_tp")
    assert resolve_rules([["embed", ["fsdp", "tensor"]]]) == (("embed", ("fsdp", "tensor")),)
    with pytest.raises(ValueError, match="Unknown sharding rules preset 'fsdp_pt'"):
        resolve_rules("fsdp_pt")


def test_logical_specs_map_to_mesh_axes():
    mesh = make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
    specs = {"w": PartitionSpec("embed", "mlp"), "b": PartitionSpec("mlp")}
    shardings = logical_to_shardings(specs, mesh, resolve_rules("fsdp_tp"))
    assert shardings["w"].spec == PartitionSpec("fsdp", "tensor")
    assert shardings["b"].spec == PartitionSpec("tensor")
    dp = logical_to_shardings(specs, mesh, resolve_rules("dp"))
    assert dp["w"].spec == PartitionSpec(None, None)


def test_indivisible_parameter_dimension_is_named():
    mesh = make_mesh({"data": 1, "fsdp": 2, "tensor": 4})
    specs = {"mlp_kernel": PartitionSpec("embed", "mlp")}
    shardings = logical_to_shardings(specs, mesh, resolve_rules("fsdp_tp"))
    abstract = {"mlp_kernel": jax.ShapeDtypeStruct((64, 30), np.float32)}
    with pytest.raises(ValueError, match=r"mlp_kernel.*dimension 1 \('mlp', size 30\).*size 4"):
        check_divisible(abstract, shardings, specs)


def test_batch_split_over_data_and_fsdp():
    mesh = make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
    rules = resolve_rules("fsdp_tp")
    assert batch_sharding(mesh, rules).spec == PartitionSpec(("data", "fsdp", "expert"))
    check_batch_size(8, mesh, rules)
    with pytest.raises(
        ValueError, match="batch_size=6 is not divisible by the data-parallel size 4"
    ):
        check_batch_size(6, mesh, rules)
