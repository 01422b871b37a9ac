"""ModelConfig: the frozen, validated description of one Transformer model."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from llm.errors import ConfigError

FAMILIES = ("decoder", "encoder", "encoder_decoder")
POSITIONS = ("learned", "sinusoidal", "rotary", "none")
ROPE_SCALINGS = ("none", "linear", "llama3", "yarn")
NORMS = ("layernorm", "rmsnorm")
ACTIVATIONS = ("relu", "gelu", "gelu_exact", "silu", "swiglu")
SINUSOIDAL_LAYOUTS = ("interleaved", "split")
REMATS = ("none", "full", "dots")
ENCODER_HEADS = ("mlm", "classification", "span")
ROUTER_SCORES = ("softmax", "sigmoid")
PARAMETRIZATIONS = ("standard", "mup")
MOE_DISPATCHES = ("dropless", "capacity")
ATTENTION_IMPLS = ("einsum", "xla", "cudnn", "splash", "pallas_gpu")
CONTEXT_ATTENTIONS = ("auto", "ring", "all_gather")
DTYPES = ("float32", "bfloat16", "float16")
COMPUTE_DTYPES = ("auto", *DTYPES)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Sizes and choices of a decoder, encoder (BERT) or encoder-decoder (AIAYN)."""

    # `decoder` (GPT/LLaMA), `encoder` (BERT) or `encoder_decoder` (AIAYN).
    family: str = "decoder"
    # Token vocabulary size (a padded vocabulary is fine).
    vocab_size: int = 32000
    # Width of the residual stream.
    d_model: int = 512
    # Query heads.
    num_heads: int = 8
    # Key/value heads: None = num_heads (MHA), 1 = MQA, in between = GQA.
    num_kv_heads: int | None = None
    # Per-head size: None = d_model // num_heads.
    head_dim: int | None = None
    # Hidden size of the feed-forward block.
    d_ff: int = 2048
    # Layers of a `decoder` or `encoder`; fallback for the two stacks below.
    num_layers: int = 6
    # Layers of the encoder / decoder stacks of `encoder_decoder` (0 = num_layers).
    num_encoder_layers: int = 0
    num_decoder_layers: int = 0
    # Longest sequence: the learned position table size and the cache length.
    max_len: int = 1024
    # `learned`, `sinusoidal`, `rotary` or `none`.
    position: str = "learned"
    # Sinusoidal column order: `interleaved` (AIAYN 3.5: sin/cos alternate) or `split`
    # (all sines then all cosines, same frequencies: tensor2tensor, fairseq, Marian).
    sinusoidal_layout: str = "interleaved"
    # Rotary base frequency (LLaMA: 10000).
    rope_theta: float = 10000.0
    # RoPE scaling for contexts beyond the pretraining length (llm/models/positions.py;
    # transformers' rope_type): `none`, `linear` (position interpolation, Chen et al. 2023:
    # positions / factor), `llama3` (Llama 3.1: long wavelengths / factor, short ones kept,
    # a smooth blend between) or `yarn` (Peng et al. 2023: a per-frequency ramp between
    # interpolation and extrapolation, cos/sin times an attention factor).
    rope_scaling: str = "none"
    # The context extension s (Llama 3.1: 8; Qwen2.5/Qwen3 YaRN: 4).
    rope_scaling_factor: float = 1.0
    # The pretraining context the scaling extends (transformers'
    # original_max_position_embeddings; Llama 3.1: 8192); llama3 and yarn, which need it.
    rope_original_max_len: int = 0
    # llama3: wavelengths above rope_original_max_len / low are divided by the factor, those
    # below rope_original_max_len / high kept (Llama 3.1: 1 and 4).
    rope_low_freq_factor: float = 1.0
    rope_high_freq_factor: float = 4.0
    # yarn: dims that turn more than beta_fast times over the original context keep their
    # frequency, fewer than beta_slow are interpolated, a linear ramp between (YaRN: 32, 1).
    rope_beta_fast: float = 32.0
    rope_beta_slow: float = 1.0
    # yarn: multiplier on cos and sin, so attention logits scale by its square (transformers'
    # attention_factor); None = 0.1 * ln(factor) + 1 (YaRN's sqrt(1/t)).
    rope_attention_factor: float | None = None
    # yarn: round the ramp's ends outwards to whole dims (transformers' truncate; gpt-oss: False).
    rope_yarn_truncate: bool = True
    # `layernorm` or `rmsnorm`.
    norm: str = "layernorm"
    norm_eps: float = 1e-5
    # True: x + f(norm(x)) (GPT-2, LLaMA); False: norm(x + f(x)) (AIAYN, BERT).
    pre_norm: bool = True
    # `relu` (AIAYN), `gelu` (tanh approx, GPT-2), `gelu_exact` (BERT), `silu` (non-gated
    # SiLU/swish, Marian), `swiglu` (LLaMA).
    activation: str = "gelu"
    # Dropout on embeddings and on each sublayer output before the residual add.
    dropout_rate: float = 0.0
    # Dropout on attention weights.
    attention_dropout_rate: float = 0.0
    # Share the token embedding with the output projection (and, for
    # encoder_decoder, between encoder and decoder inputs: AIAYN 3.4).
    tie_embeddings: bool = True
    # Multiply embeddings by sqrt(d_model) (AIAYN 3.4).
    scale_embeddings: bool = False
    # A learned bias [vocab] added to the LM head's logits (Marian's final_logits_bias);
    # decoder and encoder_decoder only (BERT's MLM head always has its bias).
    logits_bias: bool = False
    # Token id an encoder_decoder treats as source padding when no segment ids are given
    # (Marian pads with its last id, and its id 0 is EOS).
    pad_id: int = 0
    # Biases in dense layers (False for LLaMA).
    use_bias: bool = True
    # BERT token-type (segment A/B) vocabulary; 0 = no token-type embedding.
    type_vocab_size: int = 0
    # Head of an `encoder`: `mlm` (masked LM, plus NSP when batches carry nsp_labels:
    # pretraining), `classification` (tanh pooler on [CLS] + a num_labels classifier: GLUE)
    # or `span` (start/end logits per token: SQuAD). BERT section 4.
    encoder_head: str = "mlm"
    # Classes of the `classification` head.
    num_labels: int = 2
    # Run the layers with nn.scan (parameters get a leading `layers` axis).
    scan_layers: bool = False
    # Rematerialisation of each layer: `none`, `full` or `dots` (save matmuls).
    remat: str = "none"
    # Attention kernel: `einsum` (explicit, any backend, attention dropout), `xla` or
    # `cudnn` (jax.nn.dot_product_attention; cudnn = fused flash attention on NVIDIA GPUs,
    # bf16/fp16 compute), `splash` (Pallas splash attention for TPU: block-sparse causal/
    # local masks, segment ids) or `pallas_gpu` (Pallas/Triton flash attention for GPUs; no
    # window). The Pallas kernels (llm/models/splash.py) run self-attention over whole
    # sequences; the cached decode step and cross-attention use `xla`.
    attention_impl: str = "einsum"
    # Splash attention tiles (attention_impl='splash'): query and key/value blocks of the
    # forward pass, the key/value slice each inner step computes, and the query and
    # key/value blocks of the backward kernels. Multiples of 128, clipped to the sequence
    # length (per context shard for queries), which they must divide; 0 = auto (the largest
    # multiple of 128 up to 512 that divides it; compute and backward blocks: the forward's).
    splash_block_q: int = 0
    splash_block_kv: int = 0
    splash_block_kv_compute: int = 0
    splash_block_q_bwd: int = 0
    splash_block_kv_bwd: int = 0
    # One fused backward kernel for dQ, dK and dV (instead of a dQ and a dK/dV kernel).
    splash_fused_bwd: bool = False
    # Local (sliding-window) self-attention: each query sees the keys at most this many
    # positions away (causal: the previous ones); 0 = unlimited. Cross-attention is never
    # windowed.
    attention_window: int = 0
    # Self-attention when config.mesh.context > 1 splits the sequence
    # (llm/models/context_parallel.py): `ring` (key/value blocks rotate around the context
    # axis; memory of one block), `all_gather` (keys/values gathered once per layer; for
    # short rings) or `auto` (ring; with attention_impl='splash', splash's own all-gather).
    context_attention: str = "auto"
    # Zig-zag load balancing of causal self-attention over the context axis (shard i holds
    # chunks i and 2C-1-i of 2C), so every shard does the same work (ring / all_gather).
    context_load_balance: bool = True
    # `standard` or `mup` (maximal update parametrization, llm/models/mup.py; decoders):
    # with `mup`, widths are measured against mup_base_width, a learning rate tuned at that
    # width transfers to wider models: logits x base/d_model, attention 1/head_size (times
    # sqrt of the base head size) instead of 1/sqrt(head_size), Adam learning rate of hidden
    # matrices x base/d_model. At d_model == mup_base_width both are the same model.
    parametrization: str = "standard"
    # d_model of the base (tuned) model of a muP family; 0 = this d_model (multiplier 1).
    mup_base_width: int = 0
    # Mixture of experts (decoder only; llm/models/moe.py): routed experts per MoE layer,
    # 0 = a dense feed-forward block in every layer.
    num_experts: int = 0
    # Experts each token is sent to (top-k): Mixtral 2, DeepSeek-V2-Lite 6.
    experts_per_token: int = 2
    # Hidden size of each routed expert (0 = d_ff); DeepSeek's fine-grained experts are
    # narrow (1408) while its dense first layer keeps d_ff.
    expert_d_ff: int = 0
    # Always-active shared experts of size expert_d_ff (DeepSeekMoE), run as one MLP of
    # num_shared_experts * expert_d_ff.
    num_shared_experts: int = 0
    # Leading layers that keep the dense feed-forward block of d_ff (DeepSeek: 1).
    first_dense_layers: int = 0
    # Router scores: `softmax` over experts (Mixtral, DeepSeek-V2) or `sigmoid` (DeepSeek-V3).
    router_scores: str = "softmax"
    # Rescale each token's top-k scores to sum to 1 (Mixtral: True; DeepSeek-V2: False).
    router_renormalize: bool = True
    # Multiplier on the routed experts' combined output (DeepSeek routed_scaling_factor).
    router_scale: float = 1.0
    # `dropless` (tokens sorted by expert, jax.lax.ragged_dot; none dropped) or `capacity`
    # (GShard/Switch one-hot dispatch with a fixed capacity per expert; overflow dropped).
    moe_dispatch: str = "dropless"
    # Capacity per expert and sequence, as a multiple of the even share
    # experts_per_token * length / num_experts (capacity dispatch only).
    capacity_factor: float = 1.25
    # Weights of the auxiliary losses added to the training loss: the Switch/GShard
    # load-balancing loss (1 at uniform routing) and the router z-loss (ST-MoE).
    load_balance_loss_weight: float = 0.01
    router_z_loss_weight: float = 0.001
    # Compute dtype: `auto` = bfloat16 on GPU/TPU, float32 on CPU (resolved when the model
    # is built, from jax.default_backend()); softmax, logits and losses stay float32.
    dtype: str = "auto"
    # Parameter (and so optimizer-state) dtype.
    param_dtype: str = "float32"

    def __post_init__(self) -> None:
        errors = _validate(self)
        if errors:
            raise ConfigError("Bad model config:\n  " + "\n  ".join(errors))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelConfig:
        """Builds a config from a dict/ConfigDict, naming unknown keys and bad values."""
        items = dict(d.items()) if hasattr(d, "items") else dict(d)
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in items if k not in known]
        if unknown:
            msgs = []
            for k in unknown:
                close = difflib.get_close_matches(k, known, n=3)
                hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
                msgs.append(f"unknown model config key {k!r}{hint}")
            raise ConfigError("; ".join(msgs) + f". Known keys: {', '.join(known)}.")
        return cls(**items)

    def to_dict(self) -> dict[str, Any]:
        """Returns the fields as a plain dict (round-trips through from_dict)."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> ModelConfig:
        """Returns a copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @property
    def kv_heads(self) -> int:
        """Number of key/value heads, resolved."""
        return self.num_heads if self.num_kv_heads is None else self.num_kv_heads

    @property
    def head_size(self) -> int:
        """Per-head size, resolved."""
        return self.d_model // self.num_heads if self.head_dim is None else self.head_dim

    @property
    def is_moe(self) -> bool:
        """Whether feed-forward blocks after first_dense_layers are mixtures of experts."""
        return self.num_experts > 0

    @property
    def expert_hidden(self) -> int:
        """Hidden size of each routed (and shared) expert, resolved."""
        return self.expert_d_ff or self.d_ff

    @property
    def moe_layers(self) -> int:
        """Number of layers whose feed-forward block is a mixture of experts."""
        return self.num_layers - self.first_dense_layers if self.is_moe else 0

    @property
    def encoder_layers(self) -> int:
        """Encoder layers of an encoder_decoder (num_layers when 0)."""
        return self.num_encoder_layers or self.num_layers

    @property
    def decoder_layers(self) -> int:
        """Decoder layers of an encoder_decoder (num_layers when 0)."""
        return self.num_decoder_layers or self.num_layers

    @property
    def compute_dtype(self) -> jnp.dtype:
        """Compute dtype as a jnp dtype (`auto`: bfloat16 on accelerators, float32 on CPU)."""
        if self.dtype == "auto":
            return jnp.dtype("float32" if jax.default_backend() == "cpu" else "bfloat16")
        return jnp.dtype(self.dtype)

    @property
    def params_dtype(self) -> jnp.dtype:
        """Parameter dtype as a jnp dtype."""
        return jnp.dtype(self.param_dtype)


def _choice(name: str, value: Any, options: tuple[str, ...]) -> str | None:
    if value in options:
        return None
    close = difflib.get_close_matches(str(value), options, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{name}={value!r} is not one of {', '.join(options)}{hint}"


def _validate(c: ModelConfig) -> list[str]:
    errors = []
    for name, options in (
        ("family", FAMILIES),
        ("position", POSITIONS),
        ("norm", NORMS),
        ("activation", ACTIVATIONS),
        ("sinusoidal_layout", SINUSOIDAL_LAYOUTS),
        ("remat", REMATS),
        ("encoder_head", ENCODER_HEADS),
        ("attention_impl", ATTENTION_IMPLS),
        ("context_attention", CONTEXT_ATTENTIONS),
        ("router_scores", ROUTER_SCORES),
        ("parametrization", PARAMETRIZATIONS),
        ("moe_dispatch", MOE_DISPATCHES),
        ("dtype", COMPUTE_DTYPES),
        ("param_dtype", DTYPES),
    ):
        err = _choice(name, getattr(c, name), options)
        if err:
            errors.append(err)
    for name in ("vocab_size", "d_model", "num_heads", "d_ff", "max_len"):
        v = getattr(c, name)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            errors.append(f"{name}={v!r} must be a positive integer")
    for name in (
        "num_layers",
        "num_encoder_layers",
        "num_decoder_layers",
        "type_vocab_size",
        "attention_window",
        "num_experts",
        "expert_d_ff",
        "num_shared_experts",
        "first_dense_layers",
    ):
        v = getattr(c, name)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            errors.append(f"{name}={v!r} must be a non-negative integer")
    if errors:
        return errors
    if c.head_dim is None and c.d_model % c.num_heads:
        errors.append(
            f"d_model={c.d_model} is not divisible by num_heads={c.num_heads}: change "
            "one of them or set head_dim explicitly"
        )
    if c.head_dim is not None and c.head_dim <= 0:
        errors.append(f"head_dim={c.head_dim} must be positive (or None = d_model // num_heads)")
    if c.num_kv_heads is not None:
        if c.num_kv_heads <= 0 or c.num_heads % c.num_kv_heads:
            errors.append(
                f"num_heads={c.num_heads} is not divisible by num_kv_heads={c.num_kv_heads}: "
                "use a divisor of num_heads (1 = MQA) or None (= num_heads)"
            )
    if c.position == "rotary" and c.head_size % 2:
        errors.append(f"rotary positions need an even head size, got {c.head_size}")
    errors.extend(_validate_rope(c))
    if c.family == "encoder_decoder":
        if c.encoder_layers <= 0 or c.decoder_layers <= 0:
            errors.append(
                "encoder_decoder needs num_encoder_layers/num_decoder_layers (or num_layers) > 0"
            )
    elif c.num_layers <= 0:
        errors.append(f"num_layers={c.num_layers} must be positive for family={c.family!r}")
    for name in ("dropout_rate", "attention_dropout_rate"):
        v = getattr(c, name)
        if not 0.0 <= v < 1.0:
            errors.append(f"{name}={v} must be in [0, 1)")
    if not isinstance(c.pad_id, int) or isinstance(c.pad_id, bool) or c.pad_id < 0:
        errors.append(f"pad_id={c.pad_id!r} must be a non-negative integer")
    elif c.pad_id >= c.vocab_size:
        errors.append(f"pad_id={c.pad_id} must be below vocab_size={c.vocab_size}")
    if c.encoder_head != "mlm" and c.family != "encoder":
        errors.append(
            f"encoder_head={c.encoder_head!r} is a head of family='encoder' (BERT), not "
            f"{c.family!r}; leave encoder_head='mlm' for other families"
        )
    if not isinstance(c.num_labels, int) or isinstance(c.num_labels, bool) or c.num_labels < 2:
        errors.append(f"num_labels={c.num_labels!r} must be an integer >= 2 (classes)")
    if c.logits_bias and c.family == "encoder":
        errors.append(
            "logits_bias=True is for decoder/encoder_decoder heads; the encoder's MLM head "
            "always has its own bias (mlm_bias)"
        )
    if c.parametrization == "mup":
        if c.family != "decoder":
            errors.append(
                f"parametrization='mup' is implemented for family='decoder', not {c.family!r} "
                "(its heads have no muP multipliers yet); use parametrization='standard'"
            )
        if c.num_experts:
            errors.append(
                f"parametrization='mup' does not scale MoE routers yet (num_experts="
                f"{c.num_experts}); use parametrization='standard' or num_experts=0"
            )
        base = c.mup_base_width
        if not isinstance(base, int) or isinstance(base, bool) or base < 0:
            errors.append(f"mup_base_width={base!r} must be a non-negative integer (0 = d_model)")
        elif base and base % c.num_heads:
            errors.append(
                f"mup_base_width={base} must divide by num_heads={c.num_heads} (the base "
                "model's head size); use a multiple of it"
            )
    if c.attention_impl != "einsum" and c.attention_dropout_rate > 0:
        errors.append(
            f"attention_impl={c.attention_impl!r} has no attention dropout; set "
            "attention_dropout_rate=0 or attention_impl='einsum'"
        )
    if c.context_attention == "ring" and c.attention_impl == "splash":
        errors.append(
            "context_attention='ring' does not run with attention_impl='splash', which "
            "all-gathers the keys over the context axis itself; set context_attention='auto' "
            "(or 'all_gather'), or another attention_impl for a ring"
        )
    if not isinstance(c.context_load_balance, bool):
        errors.append(f"context_load_balance={c.context_load_balance!r} must be True or False")
    errors.extend(_validate_splash(c))
    if c.attention_impl == "cudnn" and c.dtype == "float32":
        errors.append(
            "attention_impl='cudnn' needs dtype bfloat16 or float16 (cuDNN's fused attention "
            "has no float32 kernel); use attention_impl='xla' for float32"
        )
    errors.extend(_validate_moe(c))
    if c.norm_eps <= 0:
        errors.append(f"norm_eps={c.norm_eps} must be positive")
    if c.position == "sinusoidal" and c.d_model % 2:
        errors.append(f"sinusoidal positions need an even d_model, got {c.d_model}")
    return errors


def _validate_splash(c: ModelConfig) -> list[str]:
    errors = []
    names = (
        "splash_block_q",
        "splash_block_kv",
        "splash_block_kv_compute",
        "splash_block_q_bwd",
        "splash_block_kv_bwd",
    )
    for name in names:
        v = getattr(c, name)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0 or v % 128:
            errors.append(
                f"{name}={v!r} must be a multiple of 128 (the TPU lane width), or 0 = auto"
            )
    if not isinstance(c.splash_fused_bwd, bool):
        errors.append(f"splash_fused_bwd={c.splash_fused_bwd!r} must be True or False")
    if errors:
        return errors
    kv, compute = c.splash_block_kv, c.splash_block_kv_compute
    if kv and compute and kv % compute:
        errors.append(
            f"splash_block_kv_compute={compute} must divide splash_block_kv={kv}; set it to "
            "a divisor of splash_block_kv that is a multiple of 128, or 0 (= splash_block_kv)"
        )
    if c.attention_impl == "pallas_gpu" and c.attention_window:
        errors.append(
            f"attention_impl='pallas_gpu' has no local window (attention_window="
            f"{c.attention_window}); use attention_impl='splash' (TPU), 'xla'/'cudnn' (causal "
            "windows) or 'einsum', or attention_window=0"
        )
    return errors


def _validate_moe(c: ModelConfig) -> list[str]:
    if not c.is_moe:
        return []
    errors = []
    if c.family != "decoder":
        errors.append(
            f"num_experts={c.num_experts} is for family='decoder' (Mixtral/DeepSeek), not "
            f"{c.family!r}; set num_experts=0"
        )
    k = c.experts_per_token
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= c.num_experts:
        errors.append(
            f"experts_per_token={k!r} must be an integer in [1, num_experts={c.num_experts}]"
        )
    if c.first_dense_layers >= c.num_layers:
        errors.append(
            f"first_dense_layers={c.first_dense_layers} leaves no MoE layer of "
            f"num_layers={c.num_layers}; use fewer dense layers or num_experts=0"
        )
    if c.use_bias:
        errors.append(
            "num_experts > 0 needs use_bias=False: the router and the experts have no biases "
            "(as in Mixtral and DeepSeek)"
        )
    if c.capacity_factor <= 0:
        errors.append(f"capacity_factor={c.capacity_factor} must be positive")
    if c.router_scale <= 0:
        errors.append(f"router_scale={c.router_scale} must be positive")
    for name in ("load_balance_loss_weight", "router_z_loss_weight"):
        if getattr(c, name) < 0:
            errors.append(f"{name}={getattr(c, name)} must be >= 0")
    return errors


# The fields each rope_scaling reads; the others must keep their defaults.
_ROPE_FIELDS = {
    "none": (),
    "linear": ("rope_scaling_factor",),
    "llama3": (
        "rope_scaling_factor",
        "rope_original_max_len",
        "rope_low_freq_factor",
        "rope_high_freq_factor",
    ),
    "yarn": (
        "rope_scaling_factor",
        "rope_original_max_len",
        "rope_beta_fast",
        "rope_beta_slow",
        "rope_attention_factor",
        "rope_yarn_truncate",
    ),
}


def _validate_rope(c: ModelConfig) -> list[str]:
    err = _choice("rope_scaling", c.rope_scaling, ROPE_SCALINGS)
    if err:
        return [err]
    kind = c.rope_scaling
    errors = []
    if kind != "none" and c.position != "rotary":
        errors.append(
            f"rope_scaling={kind!r} scales rotary positions, but position={c.position!r}: "
            "set position='rotary' or rope_scaling='none'"
        )
    defaults = {f.name: f.default for f in dataclasses.fields(ModelConfig)}
    used = _ROPE_FIELDS[kind]
    for name in dict.fromkeys(n for names in _ROPE_FIELDS.values() for n in names):
        value = getattr(c, name)
        if name not in used and value != defaults[name]:
            users = "/".join(repr(k) for k, names in _ROPE_FIELDS.items() if name in names)
            errors.append(
                f"{name}={value!r} is a setting of rope_scaling={users}, which "
                f"rope_scaling={kind!r} does not read: set rope_scaling, or leave "
                f"{name}={defaults[name]!r}"
            )
    if errors or kind == "none":
        return errors
    if not c.rope_scaling_factor >= 1:
        errors.append(
            f"rope_scaling_factor={c.rope_scaling_factor!r} must be >= 1 (the context "
            "extension: new length / pretraining length, e.g. 8 for Llama 3.1)"
        )
    if kind in ("llama3", "yarn"):
        n = c.rope_original_max_len
        if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
            errors.append(
                f"rope_original_max_len={n!r} must be a positive integer for "
                f"rope_scaling={kind!r}: the pretraining context (Llama 3.1: 8192)"
            )
    if kind == "llama3" and not 0 < c.rope_low_freq_factor < c.rope_high_freq_factor:
        errors.append(
            f"rope_low_freq_factor={c.rope_low_freq_factor!r} and rope_high_freq_factor="
            f"{c.rope_high_freq_factor!r} need 0 < low < high (Llama 3.1: 1 and 4)"
        )
    if kind == "yarn":
        if not 0 < c.rope_beta_slow < c.rope_beta_fast:
            errors.append(
                f"rope_beta_fast={c.rope_beta_fast!r} and rope_beta_slow={c.rope_beta_slow!r} "
                "need 0 < beta_slow < beta_fast (YaRN: 32 and 1)"
            )
        a = c.rope_attention_factor
        if a is not None and not a > 0:
            errors.append(
                f"rope_attention_factor={a!r} must be positive, or None for YaRN's "
                "0.1 * ln(factor) + 1"
            )
        if not isinstance(c.rope_yarn_truncate, bool):
            errors.append(f"rope_yarn_truncate={c.rope_yarn_truncate!r} must be True or False")
    return errors
