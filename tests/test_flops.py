"""Analytical training FLOPs agree with XLA's cost analysis on tiny models of every family."""

import flax.linen as nn
import jax
import optax
import pytest

from llm import flops, models
from llm.models.config import ModelConfig

CASES = {
    "gpt": ("decoder", {}),
    "llama": (
        "decoder",
        dict(
            activation="swiglu",
            num_kv_heads=2,
            position="rotary",
            norm="rmsnorm",
            use_bias=False,
            tie_embeddings=False,
        ),
    ),
    "bert": ("encoder", dict(type_vocab_size=2, pre_norm=False)),
    "aiayn": (
        "encoder_decoder",
        dict(num_encoder_layers=2, num_decoder_layers=2, position="sinusoidal", pre_norm=False),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_train_flops_match_xla_within_10_percent(name):
    family, extra = CASES[name]
    cfg = ModelConfig(
        family=family,
        vocab_size=512,
        d_model=128,
        num_heads=4,
        d_ff=512,
        num_layers=2,
        max_len=64,
        **extra,
    )
    seq_len, target_len = 64, (32 if family == "encoder_decoder" else 64)
    batch = models.dummy_batch(cfg, 4, seq_len, target_len)
    batch.pop("nsp_labels", None)
    model = models.build_model(cfg)
    params = nn.meta.unbox(
        jax.eval_shape(lambda: models.init_variables(cfg, jax.random.key(0), batch))["params"]
    )

    def loss(p, b):
        terms = model.apply({"params": p}, b, deterministic=True, method="loss_terms")
        return sum(
            optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
            for logits, y, _ in terms.values()
        )

    cost = jax.jit(jax.grad(loss)).lower(params, batch).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    analytical = flops.train_flops_per_token(cfg, seq_len, target_len) * 4 * target_len
    assert analytical / cost["flops"] == pytest.approx(1.0, abs=0.10)


def test_mfu_and_6n_rule_for_a_large_decoder():
    cfg = ModelConfig(
        family="decoder",
        vocab_size=50257,
        d_model=768,
        num_heads=12,
        d_ff=3072,
        num_layers=12,
        max_len=1024,
    )
    per_token = flops.train_flops_per_token(cfg, 1024)
    n_matmul = 12 * (4 * 768 * 768 + 2 * 768 * 3072) + 768 * 50257
    # 6N for the weights plus 12 * layers * d * T for attention (PaLM, appendix B).
    assert per_token == 6 * n_matmul + 12 * 12 * 768 * 1024
    assert flops.mfu(1000.0, per_token, per_token * 2000.0) == 0.5


def test_hardware_flops_add_what_remat_recomputes():
    cfg = ModelConfig(
        family="decoder", vocab_size=1000, d_model=256, num_heads=4, d_ff=1024, num_layers=4
    )
    seq = 512
    model = flops.train_flops_per_token(cfg, seq)
    head = 3 * 2 * 256 * 1000
    layers_fwd = (model - head) / 3
    attention_fwd = 4 * 2 * 2 * 256 * seq  # scores + mixing, 4 layers
    assert flops.hardware_flops_per_token(cfg.replace(remat="none"), seq) == model
    assert flops.hardware_flops_per_token(cfg.replace(remat="full"), seq) == pytest.approx(
        model + layers_fwd
    )
    assert flops.hardware_flops_per_token(cfg.replace(remat="dots"), seq) == pytest.approx(
        model + attention_fwd
    )
    assert flops.train_flops_per_step(cfg, 8, seq) == 8 * seq * model


def test_peak_flops_come_from_the_chip_table():
    from llm.hardware import CHIPS, get_chip

    assert flops.PEAK_FLOPS == {name: chip.peak_flops for name, chip in CHIPS.items()}
    assert get_chip("TPU v5 lite").name == "tpu_v5e"
    assert get_chip("NVIDIA H100 80GB HBM3").name == "h100"
    with pytest.raises(ValueError, match="Unknown chip 'tpu_v9'.*h100"):
        get_chip("tpu_v9")
