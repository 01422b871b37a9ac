"""launch.bench --suite=moe: dense vs MoE rows, equal active sizes, MFU of the active FLOPs."""

import pytest

from llm import flops, models
from llm.bench import suites
from llm.models import ModelConfig
from llm.models.moe import capacity_of

# Trains four small programs (~40 s on 2 cores): the slow suite.
pytestmark = pytest.mark.slow

TINY_DENSE = ModelConfig(
    family="decoder",
    vocab_size=128,
    d_model=32,
    num_heads=4,
    num_kv_heads=2,
    d_ff=32,
    num_layers=2,
    max_len=32,
    position="rotary",
    norm="rmsnorm",
    activation="swiglu",
    use_bias=False,
    tie_embeddings=False,
)
TINY_MOE = TINY_DENSE.replace(num_experts=4, experts_per_token=2, expert_d_ff=16)
SEQ, BATCH, PEAK = 32, 2, 1e10


def _router_params(cfg: ModelConfig) -> int:
    """What an MoE adds to the active count of its dense twin: a d_model x E router per layer."""
    return cfg.moe_layers * cfg.d_model * cfg.num_experts


def test_suite_sizes_have_the_dense_active_size():
    dense, moe = suites.MOE_DENSE, suites.MOE
    assert moe.experts_per_token * moe.expert_hidden == dense.d_ff
    dense_active, moe_active = models.count_active_params(dense), models.count_active_params(moe)
    assert moe_active - dense_active == _router_params(moe) == 4 * 256 * 8
    assert moe_active == pytest.approx(dense_active, rel=2e-3)
    # The 6 idle experts of every layer are in the total, not the active count.
    idle = moe.num_layers * (moe.num_experts - moe.experts_per_token) * 3 * 256 * 352
    assert models.count_params(moe) - moe_active == idle + moe.vocab_size * moe.d_model


@pytest.fixture(scope="module")
def rows():
    return suites.run_moe(
        1,
        PEAK,
        dense=TINY_DENSE,
        moe=TINY_MOE,
        shape=dict(batch_size=BATCH, seq_len=SEQ),
        capacity_factors=(0.5, 4.0),
    )


def test_rows_and_dispatches(rows):
    assert [(r["name"], r["dispatch"], r["capacity_factor"]) for r in rows] == [
        ("dense d_ff 32", "dense", None),
        ("moe dropless", "dropless", None),
        ("moe capacity 0.5", "capacity", 0.5),
        ("moe capacity 4", "capacity", 4.0),
    ]


def test_moe_rows_have_the_dense_active_params_plus_routers(rows):
    dense, *moe_rows = rows
    assert dense["params"] == models.count_params(TINY_DENSE)
    assert dense["active_params"] == models.count_active_params(TINY_DENSE)
    for r in moe_rows:
        assert r["params"] == models.count_params(TINY_MOE) > dense["params"]
        assert r["active_params"] - dense["active_params"] == _router_params(TINY_MOE) == 256
        assert r["active_params"] == pytest.approx(dense["active_params"], rel=0.02)


def test_mfu_counts_active_flops_against_the_peak(rows):
    dense, *moe_rows = rows
    assert dense["flops_per_token"] == flops.train_flops_per_token(TINY_DENSE, SEQ)
    for r in moe_rows:
        # Active FLOPs: the dense twin's plus the routers' matmuls (6 FLOPs per weight in
        # training), not the idle experts'.
        assert r["flops_per_token"] == flops.train_flops_per_token(TINY_MOE, SEQ)
        assert r["flops_per_token"] - dense["flops_per_token"] == 6 * _router_params(TINY_MOE)
    for r in rows:
        assert r["tokens_per_sec"] > 0
        assert r["tokens_per_sec"] == pytest.approx(BATCH * SEQ / r["step_seconds"])
        assert r["mfu"] == pytest.approx(r["tokens_per_sec"] * r["flops_per_token"] / PEAK)
        assert r["vs_dense"] == pytest.approx(r["tokens_per_sec"] / dense["tokens_per_sec"])


def test_dropped_fraction_by_dispatch(rows):
    dense, dropless, tight, roomy = rows
    assert dense["dropped_fraction"] is None
    assert dropless["dropped_fraction"] == 0.0
    # With capacity C per expert and sequence, at most E*C of the k*L assignments fit.
    k, num_experts = TINY_MOE.experts_per_token, TINY_MOE.num_experts
    capacity = capacity_of(TINY_MOE.replace(capacity_factor=0.5), SEQ)
    assert tight["dropped_fraction"] >= 1 - num_experts * capacity / (k * SEQ) == 0.5
    # Capacity 4 x the even share is k*L slots: every assignment fits.
    assert capacity_of(TINY_MOE.replace(capacity_factor=4.0), SEQ) == k * SEQ
    assert roomy["dropped_fraction"] == 0.0
