"""Multi-slice (DCN x ICI) meshes: which mesh axes cross slices, and what the compiler sends."""

import dataclasses
import pathlib

import numpy as np
import pytest

from llm.config import load_config
from llm.hardware import GIB
from llm.parallel import topology
from llm.parallel.config import default_mesh_config
from llm.parallel.mesh import MESH_AXES, device_grid, make_mesh

ROOT = pathlib.Path(__file__).resolve().parents[2]
needs_libtpu = pytest.mark.skipif(
    not topology.libtpu_available(), reason="needs libtpu: pip install -e '.[tpu]' (CI does)"
)


@dataclasses.dataclass(frozen=True)
class FakeDevice:
    """What mesh_utils reads of a device off TPU/GPU: its kind and platform (it then keeps
    each slice's order), plus the slice_index that only TPU devices carry."""

    id: int
    slice_index: int
    platform: str = "cpu"
    device_kind: str = "fake"


def _devices(slices: int, per_slice: int) -> list[FakeDevice]:
    return [FakeDevice(100 * s + i, s) for s in range(slices) for i in range(per_slice)]


def _slice_of(grid: np.ndarray) -> np.ndarray:
    return np.vectorize(lambda d: d.slice_index)(grid)


def _along(axis: str, values: np.ndarray) -> np.ndarray:
    """`values` laid along mesh axis `axis`, broadcastable over the other axes."""
    shape = [1] * len(MESH_AXES)
    shape[MESH_AXES.index(axis)] = len(values)
    return values.reshape(shape)


# 2 slices of 32: every axis has size 2 inside a slice, so each has neighbours to check.
ALL_AXES = dict(data=4, fsdp=2, expert=2, context=2, tensor=2)


def test_dcn_data_puts_only_the_outer_data_half_in_the_other_slice():
    devices = _devices(2, 32)
    grid = device_grid(ALL_AXES | dict(dcn_data=2), devices)
    assert grid.shape == (4, 2, 2, 2, 2)
    assert sorted(d.id for d in grid.flat) == sorted(d.id for d in devices)
    # data index = dcn * 2 + ici: indices 0, 1 in slice 0 and 2, 3 in slice 1. Every
    # neighbour along fsdp/expert/context/tensor (and along data inside a half) shares
    # the slice; the data pairs (i, i + 2), which differ in the DCN part only, do not.
    slices = _slice_of(grid)
    assert (slices == _along("data", np.array([0, 0, 1, 1]))).all()
    assert (slices[:2] != slices[2:]).all()


def test_dcn_fsdp_puts_the_outer_fsdp_half_in_the_other_slice():
    grid = device_grid(
        dict(data=2, fsdp=4, expert=2, context=2, tensor=2, dcn_fsdp=2), _devices(2, 32)
    )
    assert (_slice_of(grid) == _along("fsdp", np.array([0, 0, 1, 1]))).all()


def test_four_slices_over_data_and_fsdp():
    grid = device_grid(dict(data=2, fsdp=4, tensor=2, dcn_data=2, dcn_fsdp=2), _devices(4, 4))
    # Slices in row-major order over (dcn_data, dcn_fsdp).
    want = 2 * _along("data", np.array([0, 1])) + _along("fsdp", np.array([0, 0, 1, 1]))
    assert (_slice_of(grid) == want).all()


def test_without_dcn_sizes_all_slices_go_on_data_as_before():
    # A config written before dcn_data/dcn_fsdp existed, and one with both left at 1.
    config = default_mesh_config()
    config.fsdp = 4
    for sizes in (dict(data=-1, fsdp=4, tensor=1), config):
        grid = device_grid(sizes, _devices(2, 8))
        assert grid.shape == (4, 4, 1, 1, 1)
        assert (_slice_of(grid) == _along("data", np.array([0, 0, 1, 1]))).all()


def test_the_default_config_builds_a_one_slice_mesh():
    config = default_mesh_config()
    assert (config.dcn_data, config.dcn_fsdp) == (1, 1)
    assert dict(make_mesh(config).shape)["data"] == 8  # conftest's 8 CPU devices


@pytest.mark.parametrize(
    "sizes, slices, per_slice, message",
    [
        (
            dict(data=2, fsdp=4, dcn_data=2),
            1,
            8,
            r"config.mesh.dcn_data=2 x config.mesh.dcn_fsdp=1 spread the mesh over 2 slices, "
            r"but the devices are one slice; set them to 1.*--slices=2",
        ),
        (
            dict(data=2, fsdp=4, dcn_data=2, dcn_fsdp=2),
            2,
            4,
            r"dcn_data=2 x config.mesh.dcn_fsdp=2 = 4 slices, but the devices are in 2 slices; "
            r"make their product 2",
        ),
        (
            dict(data=3, fsdp=4, dcn_data=2),
            2,
            6,
            r"config.mesh.data=3 is not divisible by config.mesh.dcn_data=2.*multiple of 2",
        ),
        (
            dict(data=2, fsdp=6, dcn_fsdp=4),
            4,
            3,
            r"config.mesh.fsdp=6 is not divisible by config.mesh.dcn_fsdp=4",
        ),
        (
            dict(data=-1, fsdp=8, tensor=1),
            2,
            4,
            r"config.mesh.data=1 \(-1 filled\) is not divisible by the 2 slices.*"
            r"config.mesh.dcn_fsdp=2 to put the slices on fsdp",
        ),
        (
            dict(data=1, fsdp=1, tensor=-1),
            2,
            4,
            r"config.mesh.tensor=-1 took the remaining devices: give the -1 to data or fsdp",
        ),
        (dict(data=2, fsdp=4, dcn_data=0), 2, 4, r"config.mesh.dcn_data=0 is not a slice count"),
    ],
)
def test_bad_dcn_sizes_name_the_value_and_the_fix(sizes, slices, per_slice, message):
    with pytest.raises(ValueError, match=message):
        device_grid(dict(tensor=1) | sizes, _devices(slices, per_slice))


def test_unequal_slices_are_refused():
    devices = [FakeDevice(i, int(i >= 3)) for i in range(8)]
    with pytest.raises(ValueError, match=r"different numbers of devices \{0: 3, 1: 5\}"):
        device_grid(dict(data=2, fsdp=4, tensor=1), devices)


@needs_libtpu
def test_two_real_tpu_slices_keep_tensor_neighbours_adjacent():
    devices = topology.tpu_devices("v5e:2x2", slices=2)
    assert sorted({d.slice_index for d in devices}) == [0, 1]
    mesh = make_mesh(dict(data=2, fsdp=2, tensor=2, dcn_data=2), devices)
    assert dict(mesh.shape) == dict(data=2, fsdp=2, expert=1, context=1, tensor=2)
    grid = mesh.devices
    assert (_slice_of(grid) == _along("data", np.array([0, 1]))).all()
    # The TPU layout (create_device_mesh on each slice): tensor pairs are one ICI hop apart.
    for pair in grid.reshape(-1, 2):
        assert sum(abs(a - b) for a, b in zip(pair[0].coords, pair[1].coords, strict=True)) == 1


# The TPU compiler on two v5e 2x2 slices (8 chips): a scanned 4-layer decoder whose
# per-layer collectives sit inside the layer loop of the compiled program.
def _tiny_gpt2(**mesh):
    overrides = [(f"mesh.{k}", str(v)) for k, v in mesh.items()]
    return load_config(
        str(ROOT / "experiments" / "gpt2.py:tiny"),
        [("train.batch_size", "16"), ("model.scan_layers", "true"), *overrides],
    )


@pytest.fixture(scope="module")
def two_slice_compiles():
    from llm.train.aot import compile_only_cache_off
    from llm.train.program import build_train_program

    devices = topology.tpu_devices("v5e:2x2", slices=2)
    out = {}
    for name, mesh in {
        "dcn_data": dict(data=2, fsdp=4, dcn_data=2),
        "dcn_fsdp": dict(data=1, fsdp=8, dcn_fsdp=2),
    }.items():
        # Compile-only TPU executables cannot be read back from the tests' shared cache.
        with compile_only_cache_off(devices):
            program = build_train_program(_tiny_gpt2(**mesh), devices=devices)
            compiled = program.lower_train_step().compile()
        out[name] = (program, compiled, topology.dcn_transfers(compiled.as_text()))
    return out


def _param_bytes(program) -> int:
    import jax

    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(program.abstract_state.params))


@needs_libtpu
def test_with_dcn_data_only_the_sharded_gradient_all_reduce_crosses_slices(two_slice_compiles):
    program, _, transfers = two_slice_compiles["dcn_data"]
    assert dict(program.mesh.shape) == dict(data=2, fsdp=4, expert=1, context=1, tensor=1)
    assert transfers and {t.kind for t in transfers} == {"ALL_REDUCE"}
    # Each layer's gradient is all-reduced in its backward iteration (overlapping the
    # next layer's compute): inside the layer loop, once per layer and step (the compiler
    # peels one iteration out of the loop).
    layers = program.model_cfg.num_layers
    assert {t.repeats for t in transfers} <= {1, layers - 1, layers}
    assert any(t.repeats >= layers - 1 for t in transfers)
    # Reduce-scattered over fsdp inside a slice first: DCN carries a fraction of the
    # unsharded gradient (1.3x one device's fsdp shard of the f32 gradient, 2026-12-02).
    sent = topology.dcn_bytes_per_step(transfers)["ALL_REDUCE"]
    assert _param_bytes(program) / 8 < sent < _param_bytes(program) / 2


@needs_libtpu
def test_with_dcn_fsdp_the_per_layer_parameter_gathers_cross_slices(two_slice_compiles):
    program, _, transfers = two_slice_compiles["dcn_fsdp"]
    assert (_slice_of(program.mesh.devices) == _along("fsdp", np.repeat([0, 1], 4))).all()
    # FSDP gathers each layer's parameters before using them: over DCN, in the loop.
    gathers = [t for t in transfers if t.kind == "ALL_GATHER" and t.in_loop]
    assert len(gathers) >= 4
    assert topology.dcn_bytes_per_step(transfers)["ALL_GATHER"] > 0.5 * _param_bytes(program) / 8


def test_dcn_transfers_reads_loops_and_their_trip_counts():
    # The shape of a compiled multi-slice program: a send in ENTRY, one in a loop of 3
    # trips, one in a loop nested inside it whose u32 counter (state element 1, as in
    # the compiler's windowed-einsum loops) runs from 1 to 5.
    hlo = """
%inner_cond (p: (f32[2], u32[])) -> pred[] {
  %c5 = u32[]{:T(128)} constant(5)
  %gte.7 = u32[]{:T(128)} get-tuple-element(%p), index=1
  ROOT %lt = pred[] compare(%gte.7, %c5), direction=LT
}
%inner_body (p: (s32[])) -> (s32[]) {
  %send.2 = (bf16[4,8]{1,0}, u32[], token[]) send(%x, %t), is_host_transfer=true, frontend_attributes={_xla_megascale_transfer_type="ALL_GATHER"}
}
%outer_cond (p: (s32[])) -> pred[] {
  %c3 = s32[]{:T(128)} constant(3)
  ROOT %lt = pred[] compare(%gte, %c3), direction=LT
}
%outer_body (p: (s32[])) -> (s32[]) {
  %one = u32[]{:T(128)} constant(1)
  %start = u32[]{:T(128)} copy(%one)
  %init.1 = (f32[2], u32[]{:T(128)}) tuple(%y, %start)
  %while.1 = (s32[]) while(%init.1), condition=%inner_cond, body=%inner_body
  %send.1 = (f32[2,8]{1,0}, u32[], token[]) send(%x, %t), is_host_transfer=true, frontend_attributes={_xla_megascale_transfer_type="ALL_REDUCE"}
}
ENTRY %main (a: f32[]) -> f32[] {
  %zero = s32[]{:T(128)} constant(0)
  %init.0 = (s32[]{:T(128)}) tuple(%zero)
  %while.0 = (s32[]) while(%init.0), condition=%outer_cond, body=%outer_body
  %send.0 = (f32[1,1,128]{2,1,0}, u32[], token[]) send(%x, %t), is_host_transfer=true, frontend_attributes={_xla_megascale_transfer_type="ALL_REDUCE"}
}
"""
    transfers = topology.dcn_transfers(hlo)
    assert sorted((t.kind, t.nbytes, t.repeats) for t in transfers) == [
        ("ALL_GATHER", 64, 12),
        ("ALL_REDUCE", 64, 3),
        ("ALL_REDUCE", 512, 1),
    ]
    assert topology.dcn_bytes_per_step(transfers) == {"ALL_GATHER": 768, "ALL_REDUCE": 704}


@pytest.mark.slow
@needs_libtpu
def test_gpt2_1558m_fits_two_v5e_4x4_slices():
    """The docs' number: GPT-2 1558M on 2 x v5e 4x4 (32 chips), data across slices."""
    from llm.train.aot import compile_train_step

    config = load_config(
        str(ROOT / "experiments" / "gpt2.py:1558m"),
        [
            ("mesh.data", "2"),
            ("mesh.dcn_data", "2"),
            ("mesh.fsdp", "-1"),
            ("train.microbatches", "4"),
        ],
    )
    devices = topology.tpu_devices("v5e:4x4", slices=2)
    report = compile_train_step(config, devices)
    assert report.compile_error is None
    assert report.mesh == dict(data=2, fsdp=16, expert=1, context=1, tensor=1)
    assert report.devices == 32 and report.chip.name == "tpu_v5e"
    # Compiled 2026-12-02 (libtpu for jax 0.10.2): 11.55 GiB peak per chip of the 15.75 GiB HBM.
    assert 8 * GIB < report.peak_bytes <= report.hbm_bytes
