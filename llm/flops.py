"""Analytical training FLOPs per token for every model family, and MFU.

Convention (PaLM appendix B): a matmul of an [m, k] by [k, n] costs 2mkn FLOPs; training
costs 3x the forward pass (forward + two backward matmuls); attention scores and
value mixing count the full T x T square, with no discount for causal masking (what
the hardware does with dense attention). Norms, softmax, activations and the
embedding lookup are ignored (they are not matmuls). Mixture-of-experts layers count
the active parameters: the router, the experts_per_token routed experts and the shared
experts (capacity padding and dropped tokens are not model FLOPs).
"""

from __future__ import annotations

from llm.hardware import CHIPS, chip_of
from llm.models.config import ModelConfig

# Dense bf16 matmul peaks per chip, FLOP/s (vendor datasheets, no sparsity).
PEAK_FLOPS = {name: chip.peak_flops for name, chip in CHIPS.items()}


def peak_flops_of(device_kind: str) -> float | None:
    """The datasheet peak of a device kind such as 'NVIDIA H200' or 'TPU v5p', if known."""
    chip = chip_of(device_kind)
    return chip.peak_flops if chip else None


def _layer_matmul_params(cfg: ModelConfig, cross: bool, moe: bool = False) -> int:
    """Weights a token passes through in one layer (attention projections + MLP or experts)."""
    d, h = cfg.d_model, cfg.head_size
    q_and_out = 2 * d * cfg.num_heads * h
    kv = 2 * d * cfg.kv_heads * h
    mats = 3 if cfg.activation == "swiglu" else 2
    if moe:
        experts = cfg.experts_per_token + cfg.num_shared_experts
        mlp = d * cfg.num_experts + experts * mats * d * cfg.expert_hidden
    else:
        mlp = mats * d * cfg.d_ff
    attn = q_and_out + kv
    return attn * (2 if cross else 1) + mlp


def _stack_matmul_params(cfg: ModelConfig) -> int:
    """Weights a token passes through in a decoder's or encoder's whole stack."""
    dense = cfg.num_layers - cfg.moe_layers
    return dense * _layer_matmul_params(cfg, cross=False) + cfg.moe_layers * (
        _layer_matmul_params(cfg, cross=False, moe=True)
    )


def _attention_flops(cfg: ModelConfig, q_len: int, kv_len: int) -> int:
    """Forward FLOPs per query token of scores (QK^T) and mixing (PV) over kv_len keys."""
    return 2 * 2 * cfg.num_heads * cfg.head_size * kv_len


def forward_flops_per_token(cfg: ModelConfig, seq_len: int, target_len: int | None = None) -> float:
    """Forward FLOPs per (target) token; encoder-decoder counts both stacks per target token."""
    head = 2 * cfg.d_model * cfg.vocab_size
    if cfg.family in ("decoder", "encoder"):
        stack = 2 * _stack_matmul_params(cfg) + cfg.num_layers * _attention_flops(
            cfg, seq_len, seq_len
        )
        # BERT's MLM head transforms every token with a d x d dense layer first.
        mlm_transform = 2 * cfg.d_model * cfg.d_model if cfg.family == "encoder" else 0
        return stack + head + mlm_transform
    # encoder_decoder: flops of the source tokens are charged to the target tokens.
    target_len = target_len or seq_len
    enc = cfg.encoder_layers * (
        2 * _layer_matmul_params(cfg, cross=False) + _attention_flops(cfg, seq_len, seq_len)
    )
    dec = cfg.decoder_layers * (
        2 * _layer_matmul_params(cfg, cross=True)
        + _attention_flops(cfg, target_len, target_len)
        + _attention_flops(cfg, target_len, seq_len)
        - 2 * 2 * cfg.d_model * cfg.kv_heads * cfg.head_size  # cross K/V run on sources
    )
    cross_kv = cfg.decoder_layers * 2 * 2 * cfg.d_model * cfg.kv_heads * cfg.head_size
    return enc * seq_len / target_len + cross_kv * seq_len / target_len + dec + head


def train_flops_per_token(cfg: ModelConfig, seq_len: int, target_len: int | None = None) -> float:
    """Training FLOPs per (target) token: 3x the forward pass."""
    return 3 * forward_flops_per_token(cfg, seq_len, target_len)


def mfu(tokens_per_sec: float, flops_per_token: float, peak_flops: float) -> float:
    """Model FLOPs utilisation: achieved model FLOP/s over the peak."""
    return tokens_per_sec * flops_per_token / peak_flops


def train_flops_per_step(
    cfg: ModelConfig, batch_size: int, seq_len: int, target_len: int | None = None
) -> float:
    """Model FLOPs of one training step over the whole mesh (what MFU counts)."""
    return batch_size * (target_len or seq_len) * train_flops_per_token(cfg, seq_len, target_len)


def hardware_flops_per_token(
    cfg: ModelConfig, seq_len: int, target_len: int | None = None
) -> float:
    """Training FLOPs per (target) token including rematerialisation's recomputation.

    remat='full' runs each layer's forward pass twice; 'dots' saves the projections and
    recomputes only the attention score and mixing einsums (they have batch dimensions,
    so dots_with_no_batch_dims_saveable does not save them); 'none' recomputes nothing.
    """
    model = train_flops_per_token(cfg, seq_len, target_len)
    if cfg.remat == "none":
        return model
    head = 2 * cfg.d_model * cfg.vocab_size * 3  # the LM head is outside the remat'd layers
    layers_forward = (model - head) / 3
    if cfg.remat == "full":
        return model + layers_forward
    attention = _attention_flops(cfg, seq_len, seq_len) * (
        cfg.num_layers if cfg.family != "encoder_decoder" else cfg.encoder_layers
    )
    if cfg.family == "encoder_decoder":
        target_len = target_len or seq_len
        attention = attention * seq_len / target_len + cfg.decoder_layers * (
            _attention_flops(cfg, target_len, target_len)
            + _attention_flops(cfg, target_len, seq_len)
        )
    return model + attention
