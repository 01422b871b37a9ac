"""Paper model configs (dicts of ModelConfig fields) and the papers' parameter counts.

`python -m llm.models.presets` prints config, parameters, paper value and difference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llm.errors import ConfigError

ConfigDict = dict[str, Any]


def _aiayn(d_model: int, d_ff: int, num_heads: int, dropout: float) -> ConfigDict:
    # Parameter-count convention that reproduces Table 3 (65M base, 213M big): ONE
    # 37000 x d_model matrix shared by encoder input, decoder input and pre-softmax
    # projection (section 3.4), counted once; sinusoidal positions have no parameters.
    # This gives 63.08M (-2.95%) and 214.2M (+0.6%); no single vocabulary size matches
    # both rounded figures better (65M needs ~40.6k, 213M ~35.8k).
    return dict(
        family="encoder_decoder",
        vocab_size=37000,  # shared source-target BPE vocabulary (section 5.1, EN-DE)
        d_model=d_model,
        num_heads=num_heads,
        d_ff=d_ff,
        num_layers=6,
        num_encoder_layers=6,
        num_decoder_layers=6,
        max_len=512,
        position="sinusoidal",
        norm="layernorm",
        norm_eps=1e-6,
        pre_norm=False,  # LayerNorm(x + Sublayer(x)), section 3.1
        activation="relu",
        dropout_rate=dropout,  # P_drop, residual and embedding dropout (section 5.4)
        attention_dropout_rate=0.0,
        tie_embeddings=True,
        scale_embeddings=True,  # embeddings multiplied by sqrt(d_model), section 3.4
        use_bias=True,
        type_vocab_size=0,
    )


def aiayn_base() -> ConfigDict:
    """Transformer base (Table 3): N=6, d_model 512, d_ff 2048, h 8, P_drop 0.1; 65M."""
    return _aiayn(512, 2048, 8, 0.1)


def aiayn_big() -> ConfigDict:
    """Transformer big (Table 3): N=6, d_model 1024, d_ff 4096, h 16, P_drop 0.3; 213M."""
    return _aiayn(1024, 4096, 16, 0.3)


def _bert(d_model: int, num_layers: int, num_heads: int) -> ConfigDict:
    return dict(
        family="encoder",
        vocab_size=30522,  # uncased WordPiece vocabulary
        d_model=d_model,
        num_heads=num_heads,
        d_ff=4 * d_model,
        num_layers=num_layers,
        max_len=512,
        position="learned",
        norm="layernorm",
        norm_eps=1e-12,
        pre_norm=False,
        activation="gelu_exact",
        dropout_rate=0.1,
        attention_dropout_rate=0.1,
        tie_embeddings=True,  # MLM decoder tied to the input embedding (+ output bias)
        scale_embeddings=False,
        use_bias=True,
        type_vocab_size=2,
    )


def bert_base() -> ConfigDict:
    """BERT-base: L=12, H=768, A=12; 110M."""
    return _bert(768, 12, 12)


def bert_large() -> ConfigDict:
    """BERT-large: L=24, H=1024, A=16; 340M."""
    return _bert(1024, 24, 16)


def _gpt(
    d_model: int,
    num_layers: int,
    num_heads: int,
    max_len: int,
    dropout: float,
    head_dim: int | None = None,
) -> ConfigDict:
    return dict(
        family="decoder",
        vocab_size=50257,  # GPT-2 byte-level BPE (pad to 50304 for speed if wanted)
        d_model=d_model,
        num_heads=num_heads,
        head_dim=head_dim,
        d_ff=4 * d_model,
        num_layers=num_layers,
        max_len=max_len,
        position="learned",
        norm="layernorm",
        norm_eps=1e-5,
        pre_norm=True,
        activation="gelu",
        dropout_rate=dropout,
        attention_dropout_rate=dropout,
        tie_embeddings=True,
        scale_embeddings=False,
        use_bias=True,
        type_vocab_size=0,
    )


def gpt2_124m() -> ConfigDict:
    """GPT-2 small: 12 layers, d 768, 12 heads, 1024 positions."""
    return _gpt(768, 12, 12, 1024, 0.1)


def gpt2_355m() -> ConfigDict:
    """GPT-2 medium: 24 layers, d 1024, 16 heads."""
    return _gpt(1024, 24, 16, 1024, 0.1)


def gpt2_774m() -> ConfigDict:
    """GPT-2 large: 36 layers, d 1280, 20 heads."""
    return _gpt(1280, 36, 20, 1024, 0.1)


def gpt2_1558m() -> ConfigDict:
    """GPT-2 XL: 48 layers, d 1600, 25 heads."""
    return _gpt(1600, 48, 25, 1024, 0.1)


# GPT-3 Table 2.1 (n_ctx 2048). Dense attention only: the paper's alternating
# locally banded sparse layers are not modelled (they change no parameter count).
# Dropout is not given in the paper; 0 here.
def gpt3_125m() -> ConfigDict:
    """GPT-3 Small: 12 layers, d 768, 12 heads of 64."""
    return _gpt(768, 12, 12, 2048, 0.0)


def gpt3_350m() -> ConfigDict:
    """GPT-3 Medium: 24 layers, d 1024, 16 heads of 64."""
    return _gpt(1024, 24, 16, 2048, 0.0)


def gpt3_760m() -> ConfigDict:
    """GPT-3 Large: 24 layers, d 1536, 16 heads of 96."""
    return _gpt(1536, 24, 16, 2048, 0.0)


def gpt3_1_3b() -> ConfigDict:
    """GPT-3 XL: 24 layers, d 2048, heads of 128.

    Table 2.1 lists 24 heads of 128, which is 3072 != d_model 2048; 16 heads of
    128 keep d_model = heads * d_head and give the paper's 1.3B.
    """
    return _gpt(2048, 24, 16, 2048, 0.0, head_dim=128)


def gpt3_2_7b() -> ConfigDict:
    """GPT-3 2.7B: 32 layers, d 2560, 32 heads of 80."""
    return _gpt(2560, 32, 32, 2048, 0.0)


def gpt3_6_7b() -> ConfigDict:
    """GPT-3 6.7B: 32 layers, d 4096, 32 heads of 128."""
    return _gpt(4096, 32, 32, 2048, 0.0)


def gpt3_13b() -> ConfigDict:
    """GPT-3 13B: 40 layers, d 5120 (Table 2.1 prints 5140 = not 40 x 128), 40 heads of 128."""
    return _gpt(5120, 40, 40, 2048, 0.0)


def gpt3_175b() -> ConfigDict:
    """GPT-3 175B: 96 layers, d 12288, 96 heads of 128."""
    return _gpt(12288, 96, 96, 2048, 0.0)


def _llama(
    d_model: int, num_layers: int, num_heads: int, num_kv_heads: int, d_ff: int
) -> ConfigDict:
    return dict(
        family="decoder",
        vocab_size=32000,
        d_model=d_model,
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        d_ff=d_ff,
        num_layers=num_layers,
        max_len=2048,
        position="rotary",
        rope_theta=10000.0,
        norm="rmsnorm",
        norm_eps=1e-6,
        pre_norm=True,
        activation="swiglu",
        dropout_rate=0.0,
        attention_dropout_rate=0.0,
        tie_embeddings=False,
        scale_embeddings=False,
        use_bias=False,
        type_vocab_size=0,
    )


def llama_1b() -> ConfigDict:
    """LLaMA-style 1.1B: 22 layers, d 2048, 32 heads with 4 KV heads (GQA), d_ff 5632."""
    return _llama(2048, 22, 32, 4, 5632)


def llama_7b() -> ConfigDict:
    """LLaMA 7B: 32 layers, d 4096, 32 heads, d_ff 11008, vocab 32000; paper 6.7B."""
    return _llama(4096, 32, 32, 32, 11008)


def mixtral_8x7b() -> ConfigDict:
    """Mixtral 8x7B (Jiang et al. 2024): Mistral 7B's shape with 8 SwiGLU experts, top-2.

    32 layers, d 4096, 32 heads with 8 KV heads, experts of 14336, rope theta 1e6,
    32k context; 46.7B parameters, 12.9B active. Routing as Hugging Face's Mixtral:
    softmax over the 8 experts, top 2, renormalised; load-balancing loss weight 0.02
    (router_aux_loss_coef of the released config).
    """
    return _llama(4096, 32, 32, 8, 14336) | dict(
        max_len=32768,
        rope_theta=1e6,
        norm_eps=1e-5,
        num_experts=8,
        experts_per_token=2,
        router_scores="softmax",
        router_renormalize=True,
        load_balance_loss_weight=0.02,
        router_z_loss_weight=0.0,
    )


def deepseek_v2_lite() -> ConfigDict:
    """DeepSeek-V2-Lite (DeepSeek-AI 2024): 27 layers, d 2048, 64 fine-grained experts.

    Each MoE layer has 64 routed experts of 1408 (top 6, softmax scores, not
    renormalised) and 2 shared experts; the first layer is dense (d_ff 10944); vocab
    102400; 15.7B parameters, 2.4B active. Attention differs from the paper: DeepSeek's
    multi-head latent attention (MLA: a 512-dim compressed KV, decoupled rotary keys) is
    replaced by grouped-query attention with 16 heads of 128 and 4 KV heads, which
    caches 1024 values per token and layer (MLA 576, MHA 4096) and has 10.5M attention
    parameters per layer (MLA 13.8M); the totals stay within 1% and 2% of the paper's.
    """
    return _llama(2048, 27, 16, 4, 10944) | dict(
        vocab_size=102400,
        head_dim=128,
        max_len=4096,
        num_experts=64,
        experts_per_token=6,
        expert_d_ff=1408,
        num_shared_experts=2,
        first_dense_layers=1,
        router_scores="softmax",
        router_renormalize=False,
        router_scale=1.0,
        # DeepSeek-V2's expert-level balance factor alpha_1; no z-loss.
        load_balance_loss_weight=0.001,
        router_z_loss_weight=0.0,
    )


PRESETS: dict[str, Callable[[], ConfigDict]] = {
    f.__name__: f
    for f in (
        aiayn_base,
        aiayn_big,
        bert_base,
        bert_large,
        gpt2_124m,
        gpt2_355m,
        gpt2_774m,
        gpt2_1558m,
        gpt3_125m,
        gpt3_350m,
        gpt3_760m,
        gpt3_1_3b,
        gpt3_2_7b,
        gpt3_6_7b,
        gpt3_13b,
        gpt3_175b,
        llama_1b,
        llama_7b,
        mixtral_8x7b,
        deepseek_v2_lite,
    )
}

# Parameter counts reported by the papers.
PAPER_PARAMS: dict[str, float] = {
    "aiayn_base": 65e6,
    "aiayn_big": 213e6,
    "bert_base": 110e6,
    "bert_large": 340e6,
    "gpt2_124m": 124e6,
    "gpt2_355m": 355e6,
    "gpt2_774m": 774e6,
    "gpt2_1558m": 1558e6,
    "gpt3_125m": 125e6,
    "gpt3_350m": 350e6,
    "gpt3_760m": 760e6,
    "gpt3_1_3b": 1.3e9,
    "gpt3_2_7b": 2.7e9,
    "gpt3_6_7b": 6.7e9,
    "gpt3_13b": 13e9,
    "gpt3_175b": 175e9,
    "llama_7b": 6.7e9,
    "mixtral_8x7b": 46.7e9,
    "deepseek_v2_lite": 15.7e9,
}

# Parameters each token uses (mixture-of-experts papers report both).
PAPER_ACTIVE_PARAMS: dict[str, float] = {
    "mixtral_8x7b": 12.9e9,
    "deepseek_v2_lite": 2.4e9,
}


def padded_vocab(size: int, multiple: int = 128) -> int:
    """`size` rounded up to a multiple: the rows split over tensor-parallel meshes and tiles."""
    return -(-size // multiple) * multiple


def get_preset(name: str, **overrides: Any) -> ConfigDict:
    """The named preset's dict with overrides applied; unknown names list the presets."""
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset {name!r}; known: {', '.join(PRESETS)}")
    d = PRESETS[name]()
    d.update(overrides)
    return d


def _diff(n: int, paper: float | None) -> float | None:
    return None if paper is None else n / paper - 1.0


def param_table() -> list[tuple[str, int, float | None, float | None]]:
    """(name, counted params, paper params or None, relative difference or None) per preset."""
    from llm.models import count_params  # late: presets are plain data

    rows = []
    for name in PRESETS:
        n = count_params(get_preset(name, scan_layers=True))
        paper = PAPER_PARAMS.get(name)
        rows.append((name, n, paper, _diff(n, paper)))
    return rows


def active_param_table() -> list[tuple[str, int, float, float]]:
    """(name, counted active params, paper's active params, relative difference), MoE presets."""
    from llm.models import count_active_params  # late: presets are plain data

    rows = []
    for name, paper in PAPER_ACTIVE_PARAMS.items():
        n = count_active_params(get_preset(name, scan_layers=True))
        rows.append((name, n, paper, _diff(n, paper)))
    return rows


def _print_rows(title: str, rows: list[tuple[str, int, float | None, float | None]]) -> None:
    print(f"{'config':<17} {title:>16} {'paper':>10} {'diff':>8}")
    for name, n, paper, diff in rows:
        paper_s = "-" if paper is None else f"{paper / 1e6:,.0f}M"
        diff_s = "-" if diff is None else f"{100 * diff:+.1f}%"
        print(f"{name:<17} {n:>16,} {paper_s:>10} {diff_s:>8}")


def main() -> None:
    """Prints the parameter table, then the active parameters of the MoE presets."""
    _print_rows("params", param_table())
    print()
    _print_rows("active params", active_param_table())


if __name__ == "__main__":
    main()
