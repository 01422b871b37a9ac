"""launch.plan: candidates that divide, analytical pruning, compiled ranking, a cache."""

import dataclasses
import pathlib
import subprocess
import sys

import jax
import pytest

from llm.config import load_config
from llm.hardware import GIB, get_chip
from llm.train import plan as plan_lib
from tests.train.test_tpu_compile import needs_libtpu

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _config(*overrides):
    return load_config(
        str(ROOT / "experiments" / "gpt3.py:tiny"),
        [("train.batch_size", "16"), ("data.seq_len", "64"), *overrides],
    )


def test_candidates_are_the_splits_that_divide():
    config = _config()  # 4 heads, batch 16
    cands = plan_lib.candidates(config, 8)
    meshes = {(c.data, c.fsdp, c.tensor) for c in cands}
    assert meshes == {(d, 8 // (d * t), t) for t in (1, 2, 4) for d in (1, 2, 4, 8) if d * t <= 8}
    # 16 rows over data x fsdp devices, split into microbatches that divide the rows.
    for c in cands:
        assert (16 // (c.data * c.fsdp)) % c.microbatches == 0
    assert {c.remat for c in cands} == {"none", "dots", "full"}
    space = plan_lib.SearchSpace(tensor=(2,), remat=("full",), microbatches=(1,))
    assert {(c.data, c.fsdp, c.tensor) for c in plan_lib.candidates(config, 8, space)} == {
        (1, 4, 2),
        (2, 2, 2),
        (4, 1, 2),
    }
    flags = cands[0].flags()
    assert "--config.mesh.rules=fsdp_tp" in flags and "--config.train.microbatches=" in flags


def test_analytical_time_ranks_less_recompute_and_communication_first():
    config = _config()
    cfg = plan_lib.ModelConfig.from_dict(config.model.to_dict())
    chip = get_chip("h100")
    seconds = lambda **kw: plan_lib.analytic_seconds(  # noqa: E731
        cfg,
        plan_lib.Candidate(
            **{
                "data": 1,
                "fsdp": 8,
                "tensor": 1,
                "remat": "none",
                "microbatches": 1,
                "attention_impl": "einsum",
                **kw,
            }
        ),
        chip,
        16,
        (64,),
    )
    assert seconds() < seconds(remat="dots") < seconds(remat="full")
    assert seconds() < seconds(microbatches=4)  # FSDP gathers the weights per microbatch


def test_plan_on_cpu_devices_prunes_compiles_and_caches(tmp_path, monkeypatch):
    config = _config()
    # A chip whose memory fits only some candidates forces the planner to choose.
    chip = dataclasses.replace(get_chip("h100"), name="small", hbm_bytes=0.02 * GIB)
    space = plan_lib.SearchSpace(tensor=(1, 2), data=(1, 8), microbatches=(1, 2))

    compiled = []
    real = plan_lib.compile_train_step
    monkeypatch.setattr(
        plan_lib, "compile_train_step", lambda *a, **k: compiled.append(1) or real(*a, **k)
    )
    rows = plan_lib.plan(
        config, jax.devices(), chip, space=space, compile_top=1, estimate=False, cache_dir=tmp_path
    )
    assert 1 <= len(compiled) <= 8
    best = rows[0]
    assert best.fits and best.compiled["peak_bytes"] <= chip.hbm_bytes
    # Compiled misfits rank after every compiled fit.
    groups = [0 if r.fits else (1 if r.fits is False else 2) for r in rows]
    assert groups == sorted(groups)
    table = plan_lib.format_table(rows, chip)
    assert "Nothing here was measured" in table and best.candidate.mesh in table
    # The same plan again reads every compiled result from the cache.
    before = len(compiled)
    again = plan_lib.plan(
        config, jax.devices(), chip, space=space, compile_top=1, estimate=False, cache_dir=tmp_path
    )
    assert len(compiled) == before
    assert again[0].candidate == best.candidate and again[0].compiled["cached"]


@needs_libtpu
@pytest.mark.slow
def test_plan_cli_on_a_tpu_topology_prints_a_ranked_table(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "launch.plan",
            "--config=experiments/gpt3.py:tiny",
            "--topology=v5e:2x2",
            "--config.train.batch_size=8",
            "--remat=none,full",
            "--microbatches=1",
            "--compile_top=2",
            f"--cache_dir={tmp_path}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "mesh d x f x t" in out and "estimates: the TPU compiler's cost model" in out
    best = [line for line in out.splitlines() if line.startswith("best plan (compiled, fits):")]
    assert best and "--config.mesh.data=" in best[0]
    # The first row carries the compiler's estimate (no '*': not the analytical model).
    first = next(line for line in out.splitlines() if line.startswith(" 1  "))
    assert "*" not in first and "%" in first


def test_compile_order_samples_each_kind_of_plan_first():
    config = _config()
    rows = plan_lib.plan(config, jax.devices(), get_chip("h100"), compile_top=0)
    order = plan_lib.compile_order(rows, get_chip("h100").hbm_bytes)
    assert sorted(map(id, order)) == sorted(map(id, rows))
    groups = [(r.candidate.remat, r.candidate.tensor > 1, r.candidate.fsdp > 1) for r in order]
    leaders = len(set(groups))
    # The first `leaders` candidates are one of each group, each its group's fastest.
    assert len(set(groups[:leaders])) == leaders
    for row, group in zip(order[:leaders], groups[:leaders], strict=True):
        same = [r for r, g in zip(order, groups, strict=True) if g == group]
        assert row.analytic_seconds == min(r.analytic_seconds for r in same)
